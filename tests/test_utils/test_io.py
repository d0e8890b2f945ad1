# Copyright (c) mmprompt contributors. All rights reserved.
import errno
import io
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import pytest

from mmprompt.utils import (InvalidInputError, OutputPathError, atomic_write,
                            check_output, read_lines)
from mmprompt.utils.io import TEMP_SUFFIX, remove_stale_temps, temp_path
from testing_utils import REPO_ROOT


def test_atomic_write_replaces_and_honours_umask(tmp_path):
    out = tmp_path / 'a.json'
    out.write_text('old')
    os.chmod(out, 0o600)
    old = os.umask(0o022)
    try:
        with atomic_write(str(out), 'w') as f:
            f.write('new')
    finally:
        os.umask(old)
    assert out.read_text() == 'new'
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o644)
    assert os.listdir(tmp_path) == ['a.json']


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    out = tmp_path / 'a.bin'
    out.write_bytes(b'old')
    with pytest.raises(RuntimeError):
        with atomic_write(str(out)) as f:
            f.write(b'half')
            raise RuntimeError('boom')
    assert out.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['a.bin']


class _FullDisk:
    """A file whose writes fail as on a full disk after ``room`` bytes."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)


def test_full_disk_is_one_line_and_keeps_the_old_file(tmp_path):
    """ENOSPC from the serializer's writes: an OutputPathError naming the
    file and the reason, the temporary file removed, the old file intact;
    with no old file, nothing is left."""
    out = tmp_path / 'metrics.json'
    out.write_text('old')
    message = (f'could not write {out}: no space left on device; the old '
               'file is untouched')
    with pytest.raises(OutputPathError) as info:
        with atomic_write(str(out), 'w') as f:
            json.dump({'accuracy': list(range(1000))}, _FullDisk(f, 100))
    assert str(info.value) == message
    assert out.read_text() == 'old'
    assert os.listdir(tmp_path) == ['metrics.json']
    new = tmp_path / 'new.bin'
    with pytest.raises(OutputPathError, match='nothing was written$'):
        with atomic_write(str(new)) as f:
            _FullDisk(f, 0).write(b'x')
    assert os.listdir(tmp_path) == ['metrics.json']
    # Other errors of the block are the caller's: they pass unchanged.
    with pytest.raises(FileNotFoundError):
        with atomic_write(str(out), 'w') as f:
            open(tmp_path / 'missing-input')
    assert out.read_text() == 'old'


def test_full_disk_on_fsync_is_one_line(tmp_path, monkeypatch):
    out = tmp_path / 'a.bin'
    out.write_bytes(b'old')

    def no_room(fd):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(os, 'fsync', no_room)
    with pytest.raises(
            OutputPathError,
            match=r'^could not write .*a\.bin: '
            r'disk quota exceeded; the old file is untouched$'):
        with atomic_write(str(out)) as f:
            f.write(b'new')
    assert out.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['a.bin']


class _FullRaw(io.FileIO):
    """A real file (so that fileno, fsync and removal work) whose writes
    fail as on a full disk."""

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize('text', [True, False])
@pytest.mark.parametrize('size', [10, 1000])
def test_full_disk_behind_the_buffer_and_at_close(tmp_path, monkeypatch, text,
                                                  size):
    """The buffer refuses its bytes in the block and again when the file
    is closed: still one line, the old file intact, no temporary file (a
    real 256 KiB tmpfs gave the bare OSError of close before)."""
    import mmprompt.utils.io as io_module

    def full_open(path, mode, encoding=None):
        buffer = io.BufferedWriter(_FullRaw(path, 'w'), 100)
        return io.TextIOWrapper(buffer, encoding) if text else buffer

    monkeypatch.setattr(io_module, 'open', full_open, raising=False)
    out = tmp_path / 'r.json'
    out.write_text('old')
    with pytest.raises(
            OutputPathError,
            match='no space left on device; '
            'the old file is untouched$'):
        with atomic_write(str(out), 'w' if text else 'wb') as f:
            data = json.dumps(list(range(size)))[:size]
            f.write(data if text else data.encode())
    assert out.read_text() == 'old'
    assert os.listdir(tmp_path) == ['r.json']


def test_full_disk_inside_a_serializer_error(tmp_path):
    """torch.save raises a RuntimeError with the OSError as context;
    safetensors (Rust) an error saying "(os error 28)"."""
    out = tmp_path / 'w.pth'
    out.write_bytes(b'old')
    with pytest.raises(OutputPathError, match='no space left on device'):
        with atomic_write(str(out)):
            try:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError:
                raise RuntimeError('[enforce fail at inline_container.cc] '
                                   'unexpected pos 768 vs 662')
    with pytest.raises(OutputPathError, match='disk quota exceeded'):
        with atomic_write(str(out)):
            raise ValueError('Error while serializing: I/O error: Disk quota'
                             f' exceeded (os error {errno.EDQUOT})')
    with pytest.raises(ValueError, match='os error 2\\)'):  # not a write
        with atomic_write(str(out)):
            raise ValueError('No such file or directory (os error 2)')
    assert out.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['w.pth']
    # Nested writes (bulk's merge): the line names the file that failed.
    inner = tmp_path / 'inner.json'
    with pytest.raises(
            OutputPathError, match=f'^could not write {inner}: no space'):
        with atomic_write(str(out)), atomic_write(str(inner)) as f:
            _FullDisk(f, 0).write(b'x')
    assert os.listdir(tmp_path) == ['w.pth']


def test_stale_temp_of_a_dead_process_is_removed(tmp_path):
    out = str(tmp_path / 'ckpt.pth')
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    stale = temp_path(out, pid=proc.pid)
    assert osp.basename(stale) == f'.ckpt.pth.{proc.pid}{TEMP_SUFFIX}'
    open(stale, 'w').close()
    live = temp_path(out, pid=os.getppid())  # a live process: kept
    open(live, 'w').close()
    assert remove_stale_temps(out) == [stale]
    assert osp.exists(live)


def test_sigterm_during_write_removes_the_temp(tmp_path):
    out = tmp_path / 'big.bin'
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO_ROOT!r})
        from mmprompt.utils.io import atomic_write
        with atomic_write({str(out)!r}) as f:
            f.write(b'x' * 100)
            f.flush()
            print('writing', flush=True)
            time.sleep(60)
        """)
    proc = subprocess.Popen([sys.executable, '-c', script],
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b'writing'
    assert any(n.endswith(TEMP_SUFFIX) for n in os.listdir(tmp_path))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    assert os.listdir(tmp_path) == []


def test_check_output_refusals(tmp_path):
    src = tmp_path / 'img.jpg'
    src.write_bytes(b'jpeg')
    with pytest.raises(OutputPathError, match='exists; pass --force'):
        check_output(str(src))
    with pytest.raises(OutputPathError, match='one of the inputs'):
        check_output(str(src), force=True, inputs=[str(src)])
    with pytest.raises(OutputPathError, match='inside the input folder'):
        check_output(str(tmp_path / 'new.json'), inputs=[str(tmp_path)])
    with pytest.raises(OutputPathError, match='is a directory'):
        check_output(str(tmp_path), force=True)
    link = tmp_path / 'dangling.pth'
    link.symlink_to(tmp_path / 'nowhere')
    with pytest.raises(OutputPathError, match='dangling symbolic link'):
        check_output(str(link))
    check_output(str(link), force=True)
    check_output(str(tmp_path / 'sub' / 'new.json'))  # made on write
    hard = tmp_path / 'hard.jpg'
    os.link(src, hard)
    with pytest.raises(OutputPathError, match='one of the inputs'):
        check_output(str(hard), force=True, inputs=[str(src)])
    with pytest.raises(OutputPathError, match='img.jpg is not a folder'):
        check_output(str(src / 'out.json'))


def test_check_output_unwritable_folder(tmp_path, monkeypatch):
    """A read-only folder (os.access says so; root writes anywhere, so
    the check is simulated where chmod cannot show it)."""
    ro = tmp_path / 'ro'
    ro.mkdir()
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(
            os, 'access',
            lambda p, m: osp.realpath(p) != str(ro) and real_access(p, m))
    os.chmod(ro, 0o500)
    try:
        with pytest.raises(OutputPathError, match=f'{ro} is not writable'):
            check_output(str(ro / 'out.json'))
        with pytest.raises(OutputPathError, match=f'{ro} is not writable'):
            check_output(str(ro / 'sub' / 'out.json'))
    finally:
        os.chmod(ro, 0o700)


def test_read_lines(tmp_path):
    path = tmp_path / 'tags.txt'
    path.write_text(' cat \n\ndog\n')
    assert read_lines(str(path)) == ['cat', 'dog']
    with pytest.raises(InvalidInputError, match='line 2 is blank'):
        read_lines(str(path), skip_blank=False)
    path.write_text('dup\ndup\n')
    with pytest.raises(InvalidInputError, match="line 2 repeats .*'dup'"):
        read_lines(str(path), unique=True)
    path.write_text('\n \n')
    with pytest.raises(InvalidInputError, match='holds no name'):
        read_lines(str(path))
    with pytest.raises(InvalidInputError, match='is a directory'):
        read_lines(str(tmp_path))
    with pytest.raises(InvalidInputError, match='no such file'):
        read_lines(str(tmp_path / 'missing.txt'))


def test_read_lines_unstripped_keeps_items_exactly(tmp_path):
    """RAM's tag lists: Chinese names end in spaces, kept as they are."""
    path = tmp_path / 'zh.txt'
    path.write_text('猫 \n 狗\n', encoding='utf-8')
    assert read_lines(str(path), strip=False) == ['猫 ', ' 狗']
    assert read_lines(str(path)) == ['猫', '狗']
    path.write_text('a\n  \nb\n', encoding='utf-8')
    assert read_lines(str(path), strip=False) == ['a', 'b']
    with pytest.raises(InvalidInputError, match='line 2 is blank'):
        read_lines(str(path), skip_blank=False, strip=False)
