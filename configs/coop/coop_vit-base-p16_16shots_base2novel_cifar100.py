_base_ = ['./coop_vit-base-p16_16shots_cifar100.py']
# Base-to-novel (CoCoOp's protocol): train on 16 shots of the base classes
# (the first half of the sorted labels, FewShotDataset split='base'), test on
# every class. BaseNovelAccuracy reports base (base images among the base
# classes), novel (novel images among the novel classes) and their harmonic
# mean. CoOp as CoCoOp's paper ran it: 4 unified context vectors from
# 'a photo of a', 200 epochs (CoOp's vit_b16_ctxv1).
model = dict(n_ctx=4, ctx_init='a photo of a')
train_dataloader = dict(dataset=dict(split='base'))
test_evaluator = [dict(type='BaseNovelAccuracy')]
