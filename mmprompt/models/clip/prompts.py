# Copyright (c) mmprompt contributors. All rights reserved.
"""Named template sets and category sets for zero-shot classification.

The template sets and the ImageNet class names are data published by OpenAI
with CLIP (MIT licence, Copyright (c) 2021 OpenAI): the 80 ImageNet templates
and the 7-template subset of ``notebooks/Prompt_Engineering_for_ImageNet``,
the 18 CIFAR templates of ``data/prompts.md`` and the 1000 cleaned ImageNet
class names, in the form open_clip keeps them in ``zero_shot_metadata.py``.
They are stored as format strings (``'a photo of a {}.'``), never lambdas,
so that configs holding them can be dumped.

:func:`resolve_templates` and :func:`resolve_categories` turn what a user
gives (a set name, a list or a text file) into a checked tuple of strings.
"""
import os.path as osp
from collections import defaultdict
from typing import Dict, Sequence, Tuple, Union

from mmprompt.utils.io import read_lines

TemplateSpec = Union[str, Sequence[str]]
CategorySpec = Union[str, Sequence[str]]

OPENAI_IMAGENET_TEMPLATES = (
    'a bad photo of a {}.',
    'a photo of many {}.',
    'a sculpture of a {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of the {}.',
    'a rendering of a {}.',
    'graffiti of a {}.',
    'a bad photo of the {}.',
    'a cropped photo of the {}.',
    'a tattoo of a {}.',
    'the embroidered {}.',
    'a photo of a hard to see {}.',
    'a bright photo of a {}.',
    'a photo of a clean {}.',
    'a photo of a dirty {}.',
    'a dark photo of the {}.',
    'a drawing of a {}.',
    'a photo of my {}.',
    'the plastic {}.',
    'a photo of the cool {}.',
    'a close-up photo of a {}.',
    'a black and white photo of the {}.',
    'a painting of the {}.',
    'a painting of a {}.',
    'a pixelated photo of the {}.',
    'a sculpture of the {}.',
    'a bright photo of the {}.',
    'a cropped photo of a {}.',
    'a plastic {}.',
    'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.',
    'a photo of the {}.',
    'a good photo of the {}.',
    'a rendering of the {}.',
    'a {} in a video game.',
    'a photo of one {}.',
    'a doodle of a {}.',
    'a close-up photo of the {}.',
    'a photo of a {}.',
    'the origami {}.',
    'the {} in a video game.',
    'a sketch of a {}.',
    'a doodle of the {}.',
    'a origami {}.',
    'a low resolution photo of a {}.',
    'the toy {}.',
    'a rendition of the {}.',
    'a photo of the clean {}.',
    'a photo of a large {}.',
    'a rendition of a {}.',
    'a photo of a nice {}.',
    'a photo of a weird {}.',
    'a blurry photo of a {}.',
    'a cartoon {}.',
    'art of a {}.',
    'a sketch of the {}.',
    'a embroidered {}.',
    'a pixelated photo of a {}.',
    'itap of the {}.',
    'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.',
    'a plushie {}.',
    'a photo of the nice {}.',
    'a photo of the small {}.',
    'a photo of the weird {}.',
    'the cartoon {}.',
    'art of the {}.',
    'a drawing of the {}.',
    'a photo of the large {}.',
    'a black and white photo of a {}.',
    'the plushie {}.',
    'a dark photo of a {}.',
    'itap of a {}.',
    'graffiti of the {}.',
    'a toy {}.',
    'itap of my {}.',
    'a photo of a cool {}.',
    'a photo of a small {}.',
    'a tattoo of the {}.',
)

OPENAI_IMAGENET_SUBSET_TEMPLATES = (
    'itap of a {}.',
    'a bad photo of the {}.',
    'a origami {}.',
    'a photo of the large {}.',
    'a {} in a video game.',
    'art of the {}.',
    'a photo of the small {}.',
)

OPENAI_CIFAR_TEMPLATES = (
    'a photo of a {}.',
    'a blurry photo of a {}.',
    'a black and white photo of a {}.',
    'a low contrast photo of a {}.',
    'a high contrast photo of a {}.',
    'a bad photo of a {}.',
    'a good photo of a {}.',
    'a photo of a small {}.',
    'a photo of a big {}.',
    'a photo of the {}.',
    'a blurry photo of the {}.',
    'a black and white photo of the {}.',
    'a low contrast photo of the {}.',
    'a high contrast photo of the {}.',
    'a bad photo of the {}.',
    'a good photo of the {}.',
    'a photo of the small {}.',
    'a photo of the big {}.',
)

IMAGENET_CATEGORIES = (
    'tench',
    'goldfish',
    'great white shark',
    'tiger shark',
    'hammerhead shark',
    'electric ray',
    'stingray',
    'rooster',
    'hen',
    'ostrich',
    'brambling',
    'goldfinch',
    'house finch',
    'junco',
    'indigo bunting',
    'American robin',
    'bulbul',
    'jay',
    'magpie',
    'chickadee',
    'American dipper',
    'kite (bird of prey)',
    'bald eagle',
    'vulture',
    'great grey owl',
    'fire salamander',
    'smooth newt',
    'newt',
    'spotted salamander',
    'axolotl',
    'American bullfrog',
    'tree frog',
    'tailed frog',
    'loggerhead sea turtle',
    'leatherback sea turtle',
    'mud turtle',
    'terrapin',
    'box turtle',
    'banded gecko',
    'green iguana',
    'Carolina anole',
    'desert grassland whiptail lizard',
    'agama',
    'frilled-necked lizard',
    'alligator lizard',
    'Gila monster',
    'European green lizard',
    'chameleon',
    'Komodo dragon',
    'Nile crocodile',
    'American alligator',
    'triceratops',
    'worm snake',
    'ring-necked snake',
    'eastern hog-nosed snake',
    'smooth green snake',
    'kingsnake',
    'garter snake',
    'water snake',
    'vine snake',
    'night snake',
    'boa constrictor',
    'African rock python',
    'Indian cobra',
    'green mamba',
    'sea snake',
    'Saharan horned viper',
    'eastern diamondback rattlesnake',
    'sidewinder rattlesnake',
    'trilobite',
    'harvestman',
    'scorpion',
    'yellow garden spider',
    'barn spider',
    'European garden spider',
    'southern black widow',
    'tarantula',
    'wolf spider',
    'tick',
    'centipede',
    'black grouse',
    'ptarmigan',
    'ruffed grouse',
    'prairie grouse',
    'peafowl',
    'quail',
    'partridge',
    'african grey parrot',
    'macaw',
    'sulphur-crested cockatoo',
    'lorikeet',
    'coucal',
    'bee eater',
    'hornbill',
    'hummingbird',
    'jacamar',
    'toucan',
    'duck',
    'red-breasted merganser',
    'goose',
    'black swan',
    'tusker',
    'echidna',
    'platypus',
    'wallaby',
    'koala',
    'wombat',
    'jellyfish',
    'sea anemone',
    'brain coral',
    'flatworm',
    'nematode',
    'conch',
    'snail',
    'slug',
    'sea slug',
    'chiton',
    'chambered nautilus',
    'Dungeness crab',
    'rock crab',
    'fiddler crab',
    'red king crab',
    'American lobster',
    'spiny lobster',
    'crayfish',
    'hermit crab',
    'isopod',
    'white stork',
    'black stork',
    'spoonbill',
    'flamingo',
    'little blue heron',
    'great egret',
    'bittern bird',
    'crane bird',
    'limpkin',
    'common gallinule',
    'American coot',
    'bustard',
    'ruddy turnstone',
    'dunlin',
    'common redshank',
    'dowitcher',
    'oystercatcher',
    'pelican',
    'king penguin',
    'albatross',
    'grey whale',
    'killer whale',
    'dugong',
    'sea lion',
    'Chihuahua',
    'Japanese Chin',
    'Maltese',
    'Pekingese',
    'Shih Tzu',
    'King Charles Spaniel',
    'Papillon',
    'toy terrier',
    'Rhodesian Ridgeback',
    'Afghan Hound',
    'Basset Hound',
    'Beagle',
    'Bloodhound',
    'Bluetick Coonhound',
    'Black and Tan Coonhound',
    'Treeing Walker Coonhound',
    'English foxhound',
    'Redbone Coonhound',
    'borzoi',
    'Irish Wolfhound',
    'Italian Greyhound',
    'Whippet',
    'Ibizan Hound',
    'Norwegian Elkhound',
    'Otterhound',
    'Saluki',
    'Scottish Deerhound',
    'Weimaraner',
    'Staffordshire Bull Terrier',
    'American Staffordshire Terrier',
    'Bedlington Terrier',
    'Border Terrier',
    'Kerry Blue Terrier',
    'Irish Terrier',
    'Norfolk Terrier',
    'Norwich Terrier',
    'Yorkshire Terrier',
    'Wire Fox Terrier',
    'Lakeland Terrier',
    'Sealyham Terrier',
    'Airedale Terrier',
    'Cairn Terrier',
    'Australian Terrier',
    'Dandie Dinmont Terrier',
    'Boston Terrier',
    'Miniature Schnauzer',
    'Giant Schnauzer',
    'Standard Schnauzer',
    'Scottish Terrier',
    'Tibetan Terrier',
    'Australian Silky Terrier',
    'Soft-coated Wheaten Terrier',
    'West Highland White Terrier',
    'Lhasa Apso',
    'Flat-Coated Retriever',
    'Curly-coated Retriever',
    'Golden Retriever',
    'Labrador Retriever',
    'Chesapeake Bay Retriever',
    'German Shorthaired Pointer',
    'Vizsla',
    'English Setter',
    'Irish Setter',
    'Gordon Setter',
    'Brittany dog',
    'Clumber Spaniel',
    'English Springer Spaniel',
    'Welsh Springer Spaniel',
    'Cocker Spaniel',
    'Sussex Spaniel',
    'Irish Water Spaniel',
    'Kuvasz',
    'Schipperke',
    'Groenendael dog',
    'Malinois',
    'Briard',
    'Australian Kelpie',
    'Komondor',
    'Old English Sheepdog',
    'Shetland Sheepdog',
    'collie',
    'Border Collie',
    'Bouvier des Flandres dog',
    'Rottweiler',
    'German Shepherd Dog',
    'Dobermann',
    'Miniature Pinscher',
    'Greater Swiss Mountain Dog',
    'Bernese Mountain Dog',
    'Appenzeller Sennenhund',
    'Entlebucher Sennenhund',
    'Boxer',
    'Bullmastiff',
    'Tibetan Mastiff',
    'French Bulldog',
    'Great Dane',
    'St. Bernard',
    'husky',
    'Alaskan Malamute',
    'Siberian Husky',
    'Dalmatian',
    'Affenpinscher',
    'Basenji',
    'pug',
    'Leonberger',
    'Newfoundland dog',
    'Great Pyrenees dog',
    'Samoyed',
    'Pomeranian',
    'Chow Chow',
    'Keeshond',
    'brussels griffon',
    'Pembroke Welsh Corgi',
    'Cardigan Welsh Corgi',
    'Toy Poodle',
    'Miniature Poodle',
    'Standard Poodle',
    'Mexican hairless dog (xoloitzcuintli)',
    'grey wolf',
    'Alaskan tundra wolf',
    'red wolf or maned wolf',
    'coyote',
    'dingo',
    'dhole',
    'African wild dog',
    'hyena',
    'red fox',
    'kit fox',
    'Arctic fox',
    'grey fox',
    'tabby cat',
    'tiger cat',
    'Persian cat',
    'Siamese cat',
    'Egyptian Mau',
    'cougar',
    'lynx',
    'leopard',
    'snow leopard',
    'jaguar',
    'lion',
    'tiger',
    'cheetah',
    'brown bear',
    'American black bear',
    'polar bear',
    'sloth bear',
    'mongoose',
    'meerkat',
    'tiger beetle',
    'ladybug',
    'ground beetle',
    'longhorn beetle',
    'leaf beetle',
    'dung beetle',
    'rhinoceros beetle',
    'weevil',
    'fly',
    'bee',
    'ant',
    'grasshopper',
    'cricket insect',
    'stick insect',
    'cockroach',
    'praying mantis',
    'cicada',
    'leafhopper',
    'lacewing',
    'dragonfly',
    'damselfly',
    'red admiral butterfly',
    'ringlet butterfly',
    'monarch butterfly',
    'small white butterfly',
    'sulphur butterfly',
    'gossamer-winged butterfly',
    'starfish',
    'sea urchin',
    'sea cucumber',
    'cottontail rabbit',
    'hare',
    'Angora rabbit',
    'hamster',
    'porcupine',
    'fox squirrel',
    'marmot',
    'beaver',
    'guinea pig',
    'common sorrel horse',
    'zebra',
    'pig',
    'wild boar',
    'warthog',
    'hippopotamus',
    'ox',
    'water buffalo',
    'bison',
    'ram (adult male sheep)',
    'bighorn sheep',
    'Alpine ibex',
    'hartebeest',
    'impala (antelope)',
    'gazelle',
    'arabian camel',
    'llama',
    'weasel',
    'mink',
    'European polecat',
    'black-footed ferret',
    'otter',
    'skunk',
    'badger',
    'armadillo',
    'three-toed sloth',
    'orangutan',
    'gorilla',
    'chimpanzee',
    'gibbon',
    'siamang',
    'guenon',
    'patas monkey',
    'baboon',
    'macaque',
    'langur',
    'black-and-white colobus',
    'proboscis monkey',
    'marmoset',
    'white-headed capuchin',
    'howler monkey',
    'titi monkey',
    "Geoffroy's spider monkey",
    'common squirrel monkey',
    'ring-tailed lemur',
    'indri',
    'Asian elephant',
    'African bush elephant',
    'red panda',
    'giant panda',
    'snoek fish',
    'eel',
    'silver salmon',
    'rock beauty fish',
    'clownfish',
    'sturgeon',
    'gar fish',
    'lionfish',
    'pufferfish',
    'abacus',
    'abaya',
    'academic gown',
    'accordion',
    'acoustic guitar',
    'aircraft carrier',
    'airliner',
    'airship',
    'altar',
    'ambulance',
    'amphibious vehicle',
    'analog clock',
    'apiary',
    'apron',
    'trash can',
    'assault rifle',
    'backpack',
    'bakery',
    'balance beam',
    'balloon',
    'ballpoint pen',
    'Band-Aid',
    'banjo',
    'baluster / handrail',
    'barbell',
    'barber chair',
    'barbershop',
    'barn',
    'barometer',
    'barrel',
    'wheelbarrow',
    'baseball',
    'basketball',
    'bassinet',
    'bassoon',
    'swimming cap',
    'bath towel',
    'bathtub',
    'station wagon',
    'lighthouse',
    'beaker',
    'military hat (bearskin or shako)',
    'beer bottle',
    'beer glass',
    'bell tower',
    'baby bib',
    'tandem bicycle',
    'bikini',
    'ring binder',
    'binoculars',
    'birdhouse',
    'boathouse',
    'bobsleigh',
    'bolo tie',
    'poke bonnet',
    'bookcase',
    'bookstore',
    'bottle cap',
    'hunting bow',
    'bow tie',
    'brass memorial plaque',
    'bra',
    'breakwater',
    'breastplate',
    'broom',
    'bucket',
    'buckle',
    'bulletproof vest',
    'high-speed train',
    'butcher shop',
    'taxicab',
    'cauldron',
    'candle',
    'cannon',
    'canoe',
    'can opener',
    'cardigan',
    'car mirror',
    'carousel',
    'tool kit',
    'cardboard box / carton',
    'car wheel',
    'automated teller machine',
    'cassette',
    'cassette player',
    'castle',
    'catamaran',
    'CD player',
    'cello',
    'mobile phone',
    'chain',
    'chain-link fence',
    'chain mail',
    'chainsaw',
    'storage chest',
    'chiffonier',
    'bell or wind chime',
    'china cabinet',
    'Christmas stocking',
    'church',
    'movie theater',
    'cleaver',
    'cliff dwelling',
    'cloak',
    'clogs',
    'cocktail shaker',
    'coffee mug',
    'coffeemaker',
    'spiral or coil',
    'combination lock',
    'computer keyboard',
    'candy store',
    'container ship',
    'convertible',
    'corkscrew',
    'cornet',
    'cowboy boot',
    'cowboy hat',
    'cradle',
    'construction crane',
    'crash helmet',
    'crate',
    'infant bed',
    'Crock Pot',
    'croquet ball',
    'crutch',
    'cuirass',
    'dam',
    'desk',
    'desktop computer',
    'rotary dial telephone',
    'diaper',
    'digital clock',
    'digital watch',
    'dining table',
    'dishcloth',
    'dishwasher',
    'disc brake',
    'dock',
    'dog sled',
    'dome',
    'doormat',
    'drilling rig',
    'drum',
    'drumstick',
    'dumbbell',
    'Dutch oven',
    'electric fan',
    'electric guitar',
    'electric locomotive',
    'entertainment center',
    'envelope',
    'espresso machine',
    'face powder',
    'feather boa',
    'filing cabinet',
    'fireboat',
    'fire truck',
    'fire screen',
    'flagpole',
    'flute',
    'folding chair',
    'football helmet',
    'forklift',
    'fountain',
    'fountain pen',
    'four-poster bed',
    'freight car',
    'French horn',
    'frying pan',
    'fur coat',
    'garbage truck',
    'gas mask or respirator',
    'gas pump',
    'goblet',
    'go-kart',
    'golf ball',
    'golf cart',
    'gondola',
    'gong',
    'gown',
    'grand piano',
    'greenhouse',
    'radiator grille',
    'grocery store',
    'guillotine',
    'hair clip',
    'hair spray',
    'half-track',
    'hammer',
    'hamper',
    'hair dryer',
    'hand-held computer',
    'handkerchief',
    'hard disk drive',
    'harmonica',
    'harp',
    'combine harvester',
    'hatchet',
    'holster',
    'home theater',
    'honeycomb',
    'hook',
    'hoop skirt',
    'gymnastic horizontal bar',
    'horse-drawn vehicle',
    'hourglass',
    'iPod',
    'clothes iron',
    'carved pumpkin',
    'jeans',
    'jeep',
    'T-shirt',
    'jigsaw puzzle',
    'rickshaw',
    'joystick',
    'kimono',
    'knee pad',
    'knot',
    'lab coat',
    'ladle',
    'lampshade',
    'laptop computer',
    'lawn mower',
    'lens cap',
    'letter opener',
    'library',
    'lifeboat',
    'lighter',
    'limousine',
    'ocean liner',
    'lipstick',
    'slip-on shoe',
    'lotion',
    'music speaker',
    'loupe magnifying glass',
    'sawmill',
    'magnetic compass',
    'messenger bag',
    'mailbox',
    'tights',
    'one-piece bathing suit',
    'manhole cover',
    'maraca',
    'marimba',
    'mask',
    'matchstick',
    'maypole',
    'maze',
    'measuring cup',
    'medicine cabinet',
    'megalith',
    'microphone',
    'microwave oven',
    'military uniform',
    'milk can',
    'minibus',
    'miniskirt',
    'minivan',
    'missile',
    'mitten',
    'mixing bowl',
    'mobile home',
    'ford model t',
    'modem',
    'monastery',
    'monitor',
    'moped',
    'mortar and pestle',
    'graduation cap',
    'mosque',
    'mosquito net',
    'vespa',
    'mountain bike',
    'tent',
    'computer mouse',
    'mousetrap',
    'moving van',
    'muzzle',
    'metal nail',
    'neck brace',
    'necklace',
    'baby pacifier',
    'notebook computer',
    'obelisk',
    'oboe',
    'ocarina',
    'odometer',
    'oil filter',
    'pipe organ',
    'oscilloscope',
    'overskirt',
    'bullock cart',
    'oxygen mask',
    'product packet / packaging',
    'paddle',
    'paddle wheel',
    'padlock',
    'paintbrush',
    'pajamas',
    'palace',
    'pan flute',
    'paper towel',
    'parachute',
    'parallel bars',
    'park bench',
    'parking meter',
    'railroad car',
    'patio',
    'payphone',
    'pedestal',
    'pencil case',
    'pencil sharpener',
    'perfume',
    'Petri dish',
    'photocopier',
    'plectrum',
    'Pickelhaube',
    'picket fence',
    'pickup truck',
    'pier',
    'piggy bank',
    'pill bottle',
    'pillow',
    'ping-pong ball',
    'pinwheel',
    'pirate ship',
    'drink pitcher',
    'block plane',
    'planetarium',
    'plastic bag',
    'plate rack',
    'farm plow',
    'plunger',
    'Polaroid camera',
    'pole',
    'police van',
    'poncho',
    'pool table',
    'soda bottle',
    'plant pot',
    "potter's wheel",
    'power drill',
    'prayer rug',
    'printer',
    'prison',
    'missile',
    'projector',
    'hockey puck',
    'punching bag',
    'purse',
    'quill',
    'quilt',
    'race car',
    'racket',
    'radiator',
    'radio',
    'radio telescope',
    'rain barrel',
    'recreational vehicle',
    'fishing casting reel',
    'reflex camera',
    'refrigerator',
    'remote control',
    'restaurant',
    'revolver',
    'rifle',
    'rocking chair',
    'rotisserie',
    'eraser',
    'rugby ball',
    'ruler measuring stick',
    'sneaker',
    'safe',
    'safety pin',
    'salt shaker',
    'sandal',
    'sarong',
    'saxophone',
    'scabbard',
    'weighing scale',
    'school bus',
    'schooner',
    'scoreboard',
    'CRT monitor',
    'screw',
    'screwdriver',
    'seat belt',
    'sewing machine',
    'shield',
    'shoe store',
    'shoji screen / room divider',
    'shopping basket',
    'shopping cart',
    'shovel',
    'shower cap',
    'shower curtain',
    'ski',
    'balaclava ski mask',
    'sleeping bag',
    'slide rule',
    'sliding door',
    'slot machine',
    'snorkel',
    'snowmobile',
    'snowplow',
    'soap dispenser',
    'soccer ball',
    'sock',
    'solar thermal collector',
    'sombrero',
    'soup bowl',
    'keyboard space bar',
    'space heater',
    'space shuttle',
    'spatula',
    'motorboat',
    'spider web',
    'spindle',
    'sports car',
    'spotlight',
    'stage',
    'steam locomotive',
    'through arch bridge',
    'steel drum',
    'stethoscope',
    'scarf',
    'stone wall',
    'stopwatch',
    'stove',
    'strainer',
    'tram',
    'stretcher',
    'couch',
    'stupa',
    'submarine',
    'suit',
    'sundial',
    'sunglasses',
    'sunglasses',
    'sunscreen',
    'suspension bridge',
    'mop',
    'sweatshirt',
    'swim trunks / shorts',
    'swing',
    'electrical switch',
    'syringe',
    'table lamp',
    'tank',
    'tape player',
    'teapot',
    'teddy bear',
    'television',
    'tennis ball',
    'thatched roof',
    'front curtain',
    'thimble',
    'threshing machine',
    'throne',
    'tile roof',
    'toaster',
    'tobacco shop',
    'toilet seat',
    'torch',
    'totem pole',
    'tow truck',
    'toy store',
    'tractor',
    'semi-trailer truck',
    'tray',
    'trench coat',
    'tricycle',
    'trimaran',
    'tripod',
    'triumphal arch',
    'trolleybus',
    'trombone',
    'hot tub',
    'turnstile',
    'typewriter keyboard',
    'umbrella',
    'unicycle',
    'upright piano',
    'vacuum cleaner',
    'vase',
    'vaulted or arched ceiling',
    'velvet fabric',
    'vending machine',
    'vestment',
    'viaduct',
    'violin',
    'volleyball',
    'waffle iron',
    'wall clock',
    'wallet',
    'wardrobe',
    'military aircraft',
    'sink',
    'washing machine',
    'water bottle',
    'water jug',
    'water tower',
    'whiskey jug',
    'whistle',
    'hair wig',
    'window screen',
    'window shade',
    'Windsor tie',
    'wine bottle',
    'airplane wing',
    'wok',
    'wooden spoon',
    'wool',
    'split-rail fence',
    'shipwreck',
    'sailboat',
    'yurt',
    'website',
    'comic book',
    'crossword',
    'traffic or street sign',
    'traffic light',
    'dust jacket',
    'menu',
    'plate',
    'guacamole',
    'consomme',
    'hot pot',
    'trifle',
    'ice cream',
    'popsicle',
    'baguette',
    'bagel',
    'pretzel',
    'cheeseburger',
    'hot dog',
    'mashed potatoes',
    'cabbage',
    'broccoli',
    'cauliflower',
    'zucchini',
    'spaghetti squash',
    'acorn squash',
    'butternut squash',
    'cucumber',
    'artichoke',
    'bell pepper',
    'cardoon',
    'mushroom',
    'Granny Smith apple',
    'strawberry',
    'orange',
    'lemon',
    'fig',
    'pineapple',
    'banana',
    'jackfruit',
    'cherimoya (custard apple)',
    'pomegranate',
    'hay',
    'carbonara',
    'chocolate syrup',
    'dough',
    'meatloaf',
    'pizza',
    'pot pie',
    'burrito',
    'red wine',
    'espresso',
    'tea cup',
    'eggnog',
    'mountain',
    'bubble',
    'cliff',
    'coral reef',
    'geyser',
    'lakeshore',
    'promontory',
    'sandbar',
    'beach',
    'valley',
    'volcano',
    'baseball player',
    'bridegroom',
    'scuba diver',
    'rapeseed',
    'daisy',
    "yellow lady's slipper",
    'corn',
    'acorn',
    'rose hip',
    'horse chestnut seed',
    'coral fungus',
    'agaric',
    'gyromitra',
    'stinkhorn mushroom',
    'earth star fungus',
    'hen of the woods mushroom',
    'bolete',
    'corn cob',
    'toilet paper',
)

SIMPLE_TEMPLATES = ('a photo of a {}.', )

TEMPLATE_SETS: Dict[str, Tuple[str, ...]] = {
    'openai_imagenet': OPENAI_IMAGENET_TEMPLATES,
    'openai_imagenet_subset': OPENAI_IMAGENET_SUBSET_TEMPLATES,
    'openai_cifar': OPENAI_CIFAR_TEMPLATES,
    'simple': SIMPLE_TEMPLATES,
}


def _cifar100_categories() -> Tuple[str, ...]:
    """CIFAR-100's classes in MMPreTrain's (label) order, ``_`` read as a
    space (``'aquarium_fish'`` -> ``'aquarium fish'``)."""
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES
    return tuple(name.replace('_', ' ') for name in CIFAR100_CATEGORIES)


def builtin_category_sets() -> Dict[str, Tuple[str, ...]]:
    """The built-in category sets by name.

    ``'imagenet'`` (alias ``'in1k'``) holds OpenAI's 1000 cleaned ImageNet
    names in label order; two pairs of classes share a name there
    (``'missile'``, ``'sunglasses'``), as in OpenAI's evaluation.
    ``'cifar100'`` holds CIFAR-100's names in MMPreTrain's label order.

    Returns:
        dict: Set name -> tuple of category names.
    """
    return {
        'imagenet': IMAGENET_CATEGORIES,
        'in1k': IMAGENET_CATEGORIES,
        'cifar100': _cifar100_categories(),
    }


def check_templates(templates: Sequence[str],
                    fields: Sequence[str] = ()) -> Tuple[str, ...]:
    """Check that every template is a string with exactly one ``{}``.

    The one template rule, for CLIP's templates and RAM's open-set ones.

    Args:
        templates (Sequence[str]): Format strings such as
            ``'a photo of a {}.'``.
        fields (Sequence[str]): Named fields a template may use besides
            ``{}``, e.g. ``('article', )`` for RAM's ``'{article}'``.
            Defaults to ().

    Returns:
        tuple[str]: The templates.

    Raises:
        ValueError: If there is no template, or one has no ``{}``, several,
            or other replacement fields.
        TypeError: If a template is not a string.
    """
    templates = tuple(templates)
    if not templates:
        raise ValueError('templates is empty: give at least one template')
    named = {field: '' for field in fields}
    allowed = ''.join(f' and "{{{f}}}"' for f in fields)
    for template in templates:
        if not isinstance(template, str):
            raise TypeError(
                f'a template must be a string, got {type(template).__name__}'
                f' ({template!r})')
        if '{}' not in template:
            raise ValueError(
                f"template {template!r} is not a format string with '{{}}' "
                'for the category name (it needs exactly one)')
        try:
            filled = template.format('', **named)
        except (IndexError, KeyError, ValueError) as e:
            raise ValueError(
                f'template {template!r} must hold exactly one "{{}}"'
                f'{allowed} and no other replacement field '
                f'({type(e).__name__}: {e})') from None
        if template.count('{}') != 1 or '{' in filled or '}' in filled:
            raise ValueError(
                f'template {template!r} must hold exactly one "{{}}"'
                f'{allowed} and no other braces')
    return templates


def resolve_templates(spec: TemplateSpec) -> Tuple[str, ...]:
    """Turn a template specification into a checked tuple of templates.

    This is the one statement of the template rule; the models, the
    inferencers and the tools refer to it. A string is read, in this order,
    as a built-in set name, then (if it holds a brace; set names never do)
    as one template, then as a text file; every template is checked by
    :func:`check_templates`.

    Args:
        spec (str | Sequence[str]): One of

            - a set name: ``'openai_imagenet'`` (OpenAI's 80 ImageNet
              templates), ``'openai_imagenet_subset'`` (7 of them),
              ``'openai_cifar'`` (OpenAI's 18 CIFAR templates) or
              ``'simple'`` (``'a photo of a {}.'``);
            - one template: a string with ``{}``, ``'a photo of a {}.'``;
            - a path to a UTF-8 text file, one template per line (blank
              lines are skipped);
            - a list or tuple of templates.

    Returns:
        tuple[str]: Format strings, each with exactly one ``{}``.

    Raises:
        TypeError: For a string that is neither a set name, a template nor
            a file.
        ValueError: For an empty set or a template without exactly one
            ``{}``.
    """
    if isinstance(spec, str):
        if spec in TEMPLATE_SETS:
            return TEMPLATE_SETS[spec]
        if '{' in spec or '}' in spec:
            return check_templates([spec])
        if osp.isfile(spec):
            return check_templates(read_lines(spec))
        raise TypeError(
            'templates must be a set name '
            f'({", ".join(sorted(TEMPLATE_SETS))}), a template with "{{}}" '
            f'for the category name, a text file or a list; got {spec!r}')
    return check_templates(spec)


def _name_key(name: str) -> str:
    """What the tokenizer sees of a name: lower case, whitespace folded."""
    return ' '.join(name.lower().split())


def check_categories(categories: Sequence[str]) -> Tuple[str, ...]:
    """Check a user's category names: non-empty, strings, no duplicates.

    Names are compared as the tokenizer reads them (case and runs of
    whitespace ignored), since such names would get the same prototype.
    OpenAI's ImageNet list itself is accepted as published, with its two
    repeated names.

    Args:
        categories (Sequence[str]): Category names.

    Returns:
        tuple[str]: The names, stripped of surrounding whitespace.

    Raises:
        ValueError: If the list is empty, a name is blank, or names repeat
            (the error names them and their positions).
        TypeError: If a name is not a string.
    """
    if isinstance(categories, str):
        raise TypeError('categories must be a sequence of strings, not a '
                        'string')
    names = []
    for i, name in enumerate(categories):
        if not isinstance(name, str):
            raise TypeError(f'category {i} is not a string: {name!r}')
        if not name.strip():
            raise ValueError(f'category {i} is blank')
        names.append(name.strip())
    if not names:
        raise ValueError('categories is empty: give at least one name')
    if tuple(names) == IMAGENET_CATEGORIES:
        # OpenAI's published list, as given back by a model or a user.
        return IMAGENET_CATEGORIES
    positions = defaultdict(list)
    for i, name in enumerate(names):
        positions[_name_key(name)].append(i)
    repeated = [idx for idx in positions.values() if len(idx) > 1]
    if repeated:
        shown = '; '.join(', '.join(f'{names[i]!r} (#{i})' for i in idx)
                          for idx in repeated)
        raise ValueError(f'duplicate category names: {shown}')
    return tuple(names)


def resolve_categories(spec: CategorySpec) -> Tuple[str, ...]:
    """Turn a category specification into a tuple of names in label order.

    Args:
        spec (str | Sequence[str]): One of

            - a built-in set name: ``'cifar100'`` or ``'imagenet'``
              (``'in1k'``), see :func:`builtin_category_sets`;
            - a path to a UTF-8 text file, one name per line (blank lines
              are skipped);
            - a list or tuple of names.

    Returns:
        tuple[str]: Category names; label ``i`` is name ``i``.

    Raises:
        TypeError: For a string that is neither a set name nor a file.
        ValueError: For an empty list or duplicate names (user lists and
            files only; the built-in ImageNet set keeps OpenAI's two
            repeated names).
    """
    if isinstance(spec, str):
        builtin = builtin_category_sets()
        if spec in builtin:
            return builtin[spec]
        if osp.isfile(spec):
            return check_categories(read_lines(spec))
        raise TypeError(
            'categories must be a sequence of strings, a set name '
            f'({", ".join(sorted(builtin))}) or a text file with one name '
            f'per line; got {spec!r}')
    return check_categories(spec)


def resolve_descriptions(
        spec: Union[None, str, Dict[str, Union[str, Sequence[str]]]],
        categories: Sequence[str]) -> Dict[int, Tuple[str, ...]]:
    """Map free-text descriptions to the labels of their categories.

    Args:
        spec (str | dict, optional): ``{category name: description or list
            of descriptions}`` (e.g. ``{'tabby cat': 'a facial photo of a
            tabby cat'}``), or the path of a JSON file holding such a dict.
            Not every category needs one. None means no descriptions.
        categories (Sequence[str]): The category names, in label order.

    Returns:
        dict: Label -> tuple of descriptions (only labels that have some).

    Raises:
        ValueError: If a key names no category, or a description is blank.
        TypeError: If a description is not a string.
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        import json
        if not osp.isfile(spec):
            raise ValueError(f'descriptions file {spec!r} does not exist')
        with open(spec, encoding='utf-8') as f:
            spec = json.load(f)
    if not isinstance(spec, dict):
        raise TypeError('descriptions must be a dict {category: text or '
                        f'list of texts}}, got {type(spec).__name__}')
    labels = defaultdict(list)
    for i, name in enumerate(categories):
        labels[name].append(i)
    unknown = [k for k in spec if k not in labels]
    if unknown:
        raise ValueError(f'descriptions given for unknown categories: '
                         f'{unknown}')
    out = {}
    for name, texts in spec.items():
        if not isinstance(texts, (str, list, tuple)):
            raise TypeError(f'the descriptions of {name!r} must be a string '
                            f'or a list of strings, not '
                            f'{type(texts).__name__}')
        texts = (texts, ) if isinstance(texts, str) else tuple(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f'a description of {name!r} is not a string:'
                                f' {text!r}')
            if not text.strip():
                raise ValueError(f'a description of {name!r} is blank')
        if texts:
            for label in labels[name]:
                out[label] = texts
    return dict(sorted(out.items()))
