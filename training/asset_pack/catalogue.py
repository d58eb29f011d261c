"""Which Debian-packaged media make up the real-parts benchmark.

Each class pairs cut-outs ("looks") with real recordings of the same kind of object. Sound
references are short strings, each one independent recording:
    "tux:<stamp>"                   the Tux Paint stamp's own recording (<stamp>.ogg)
    "gc:<archive>:<member>"         a file inside gcompris-qt-data's rcc/<archive>.rcc,
                                    <member> relative to the activity's resource/ folder
    "fd:<name>"                     sound-theme-freedesktop's stereo/<name>.oga
    "0ad:<glob>"                    files of 0ad-data's public.zip matching <glob>, taken
                                    together as ONE recording (one animal of one game)
    "wl:<glob>"                     files below widelands-data's data/ folder, likewise one
                                    recording
    "sf:<package>:<file>"           the class's instrument (soundfonts.PARTS) played by the
                                    SoundFont <file> of <package>: one recording, rendered as a
                                    few phrases
Cut-out references: a path below usr/share/tuxpaint/stamps/ without the extension (a Tux Paint
stamp), "gcsvg:<archive>:<member>" (an SVG drawing of gcompris-qt-data, rendered with
rsvg-convert; its alpha is the mask), "gcimg:<archive>:<member>" (a gcompris-qt-data picture
with an alpha channel, e.g. the lang activity's drawings) or "ocsvg:<path>" (an Open Clip Art
Library SVG below usr/share/openclipart/svg/, without the extension, rendered likewise). Only
the asset-pack tooling reads this table; the benchmark builder reads the resulting manifest.
"""
from __future__ import annotations

PACKAGES = ("tuxpaint-stamps-default", "gcompris-qt-data", "sound-theme-freedesktop",
            "fluid-soundfont-gm", "timgm6mb-soundfont", "csound-soundfont", "avldrums.lv2-soundfont",
            "widelands-data", "0ad-data", "openclipart-svg")
# Large packages: only these members are unpacked (0ad-data is a 1.4 GB download whose
# public.zip unpacks to 3.3 GB; widelands-data is 380 MB).
PARTIAL = {
    "0ad-data": ["./usr/share/games/0ad/mods/public/public.zip", "./usr/share/doc/0ad-data"],
    "widelands-data": ["./usr/share/games/widelands/data/sound", "./usr/share/games/widelands/data/world/critters",
                       "./usr/share/doc/widelands-data"],
}
TOOLS = ("librsvg2-bin",)  # rsvg-convert renders the SVG looks (uses the system's librsvg2-2)
ZERO_AD_ZIP = "usr/share/games/0ad/mods/public/public.zip"
WIDELANDS_DATA = "usr/share/games/widelands/data"

# Independent SoundFonts (package, file, licence). csound's GM bank shares most samples
# with TimGM6mb: the duplicate check keeps it only for the classes where it differs.
SOUNDFONTS = {
    "fluid-soundfont-gm": ("usr/share/sounds/sf2/FluidR3_GM.sf2", "MIT"),
    "timgm6mb-soundfont": ("usr/share/sounds/sf2/TimGM6mb.sf2", "GPL-2.0-only"),
    "csound-soundfont": ("usr/share/sounds/sf2/sf_GMbank.sf2", "Public-Domain"),
    "avldrums.lv2-soundfont": ("usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2", "CC-BY-SA-3.0"),
    "avldrums.lv2-soundfont:red": ("usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2", "CC-BY-SA-3.0"),
}
GM_FONTS = ("fluid-soundfont-gm", "timgm6mb-soundfont", "csound-soundfont")
DRUM_FONTS = GM_FONTS + ("avldrums.lv2-soundfont", "avldrums.lv2-soundfont:red")

TUX_STAMPS = "usr/share/tuxpaint/stamps"
GC_RCC = "usr/share/gcompris-qt/rcc"
FD_SOUNDS = "usr/share/sounds/freedesktop/stereo"
OPENCLIPART_SVG = "usr/share/openclipart/svg"

M = "animals/mammals/"
B = "animals/birds/"
MUSIC = "hobbies/music/"


def _tux(*stamps: str) -> list[str]:
    return [f"tux:{s}" for s in stamps]


def _sf(*fonts: str) -> list[str]:
    return [f"sf:{font}" for font in fonts]


ANIMAL_0AD = "0ad:audio/actor/fauna/animal/"
FARM_SVG = "gcsvg:explore_farm_animals:animals/"
INSTRUMENT_SVG = "gcsvg:instruments:"
MEMORY_SVG = "gcsvg:memory:"  # Mathieu Ignacio's card drawings
LANG_IMG = "gcimg:lang:words_sample/"  # Arts4Apps drawings with alpha
OC_ANIMAL = "ocsvg:animals/mammals/"
OC_MUSIC = "ocsvg:recreation/music/"


# label -> (cut-out stamps, recordings). A recording that duplicates an earlier one (same
# audio under two stamp names) is detected and dropped by make.py.
CLASSES: dict[str, tuple[list[str], list[str]]] = {
    "cow": ([M + "bovines/cow", M + "bovines/cow_white", M + "bovines/bull", FARM_SVG + "cow.svg",
             MEMORY_SVG + "06_cow.svg", LANG_IMG + "cow.webp", OC_ANIMAL + "vacca_pezzata_rossa_val_01"],
            _tux(M + "bovines/cow", M + "bovines/cow_white", M + "bovines/bull")
            + ["gc:explore_farm_animals:animals/cow.ogg", ANIMAL_0AD + "cattle_0*.ogg",
               "wl:sound/farm/ox_0*.ogg"]),
    "pig": ([M + "pig", M + "pig_golden", M + "pig_golden2", FARM_SVG + "pig.svg", MEMORY_SVG + "02_pig.svg",
             LANG_IMG + "pig.webp", OC_ANIMAL + "pig_marcelo_caiafa1"],
            _tux(M + "pig", M + "pig_golden", M + "pig_golden2")
            + ["gc:explore_farm_animals:animals/pig.ogg", ANIMAL_0AD + "pig_1*.ogg"]),
    "sheep": ([M + "bovines/sheep", M + "bovines/sheep_lamb", FARM_SVG + "sheep.svg", MEMORY_SVG + "07_sheep.svg",
               LANG_IMG + "sheep.webp", OC_ANIMAL + "sheep-md-v0.1"],
              _tux(M + "bovines/sheep", M + "bovines/sheep_lamb")
              + ["gc:explore_farm_animals:animals/sheep.ogg", ANIMAL_0AD + "sheep_1*.ogg",
                 "wl:sound/farm/sheep_0*.ogg"]),
    "goat": ([M + "bovines/goat", M + "bovines/mountaingoat", M + "bovines/ram"],
             _tux(M + "bovines/goat", M + "bovines/mountaingoat", M + "bovines/ram")
             + ["0ad:audio/actor/fauna/death/goat_1*.ogg"]),
    "dog": ([M + "dogs/dog", FARM_SVG + "dog.svg", LANG_IMG + "dog.webp", OC_ANIMAL + "dog_01_drawn_with_strai_01"],
            _tux(M + "dogs/dog") + ["gc:explore_farm_animals:animals/dog.ogg",
                                    "gc:memory-sound:LRBark_1_LA_cut.ogg",
                                    "gc:memory-sound:LRBark_3_LA_cut.ogg"]),
    "horse": ([M + "equines/horse", FARM_SVG + "horse.svg", LANG_IMG + "horse.webp"],
              _tux(M + "equines/horse") + ["gc:explore_farm_animals:animals/horse.ogg",
                                           ANIMAL_0AD + "horse_[is]*.ogg", "wl:sound/farm/horse_0*.ogg"]),
    "duck": ([B + "duck", B + "drake", FARM_SVG + "duck.svg", LANG_IMG + "duck.webp",
              "ocsvg:animals/birds/jonathon_s_duck_01"],
             _tux(B + "duck", B + "drake") + ["gc:explore_farm_animals:animals/duck.ogg",
                                              "wl:world/critters/duck/duck_0*.ogg"]),
    "chicken": ([B + "hen", B + "chicken_profile", FARM_SVG + "chicken.svg", MEMORY_SVG + "10_chicken.svg",
                 LANG_IMG + "chicken.webp"],
                _tux(B + "hen") + ["gc:explore_farm_animals:animals/chickens.ogg", ANIMAL_0AD + "chicken_1*.ogg"]),
    "owl": ([B + "owl", FARM_SVG + "owl.svg", LANG_IMG + "owl.webp"], _tux(B + "owl") + ["gc:explore_farm_animals:animals/owl.ogg"]),
    "frog": (["animals/amphibians/frog", "animals/amphibians/frog-1", MEMORY_SVG + "21_frog.svg", LANG_IMG + "frog.webp"],
             _tux("animals/amphibians/frog") + ["gc:memory-sound:LRFrogsInPondDuringStormLACut.ogg",
                                                "wl:sound/animals/frog.ogg"]),
    "rooster": ([B + "rooster"], _tux(B + "rooster")),
    "goose": ([B + "gander"], _tux(B + "gander")),
    "crow": ([B + "crow"], _tux(B + "crow")),
    "cuckoo": ([B + "cuckoo"], _tux(B + "cuckoo")),
    "blackbird": ([B + "blackbird"], _tux(B + "blackbird")),
    "lark": ([B + "lark"], _tux(B + "lark")),
    "seagull": ([B + "seagull"], _tux(B + "seagull")),
    "penguin": ([B + "penguin", MEMORY_SVG + "05_penguin.svg"], _tux(B + "penguin")),
    "turkey": ([B + "turkey", LANG_IMG + "turkey.webp"], _tux(B + "turkey")),
    "vulture": ([B + "vulture"], _tux(B + "vulture")),
    "toucan": ([B + "tucan"], _tux(B + "tucan")),
    "bee": (["animals/insects/bee", LANG_IMG + "bee.webp"], _tux("animals/insects/bee")),
    "hornet": (["animals/insects/hornet"], _tux("animals/insects/hornet")),
    "grasshopper": (["animals/insects/grasshopper"], _tux("animals/insects/grasshopper")),
    "chimpanzee": ([M + "apes/chimp"], _tux(M + "apes/chimp")),
    "gorilla": ([M + "apes/gorilla", LANG_IMG + "gorilla.webp"], _tux(M + "apes/gorilla")),
    "dolphin": ([M + "aquatic/dolphin", LANG_IMG + "dolphin.webp"], _tux(M + "aquatic/dolphin")),
    "orca": ([M + "aquatic/orca"], _tux(M + "aquatic/orca")),
    "sea_lion": ([M + "aquatic/sea_lion"], _tux(M + "aquatic/sea_lion")),
    "whale": ([M + "aquatic/whale", LANG_IMG + "whale.webp"], _tux(M + "aquatic/whale")),
    # Tux Paint's badger and beaver share one recording; the class keeps the badger picture.
    "badger": ([M + "badger"], _tux(M + "badger", M + "rodents/beaver")),
    "bear": ([M + "bears/bear", MEMORY_SVG + "03_bear.svg", LANG_IMG + "bear.webp"], _tux(M + "bears/bear")),
    "bison": ([M + "bovines/bison"], _tux(M + "bovines/bison")),
    "camel": ([M + "camel/camel", M + "camel/dromedary", LANG_IMG + "camel.webp", OC_ANIMAL + "contour_camel"],
              _tux(M + "camel/camel", M + "camel/dromedary") + [ANIMAL_0AD + "camel_10.ogg"]),
    "lion": ([M + "cats/lion", M + "cats/lion-2", MEMORY_SVG + "17_lion.svg"], _tux(M + "cats/lion") + [ANIMAL_0AD + "lion_*.ogg"]),
    "tiger": ([M + "cats/tiger", M + "cats/tiger_sumatran"], _tux(M + "cats/tiger")),
    "deer": ([M + "deer/deer", M + "deer/doe", M + "deer/caribou", M + "deer/wapiti", OC_ANIMAL + "deer_matt_todd_01"],
             _tux(M + "deer/deer", M + "deer/doe", M + "deer/caribou") + ["wl:sound/animals/stag_0*.ogg"]),
    "fox": ([M + "dogs/fox", MEMORY_SVG + "14_fox.svg", LANG_IMG + "fox.webp"], _tux(M + "dogs/fox")),
    "elephant": ([M + "elephant", MEMORY_SVG + "16_elephant.svg"], _tux(M + "elephant") + [ANIMAL_0AD + "elephant_*.ogg"]),
    "donkey": ([M + "equines/donkey"], _tux(M + "equines/donkey") + ["wl:sound/farm/donkey.ogg"]),
    "zebra": ([M + "equines/zebra"], _tux(M + "equines/zebra")),
    "giraffe": ([M + "giraffe"], _tux(M + "giraffe")),
    "hippopotamus": ([M + "hippopotamus", MEMORY_SVG + "04_hippopotamus.svg",
                      LANG_IMG + "hippopotamus.webp"], _tux(M + "hippopotamus")),
    "mouse": ([M + "rodents/mouse", LANG_IMG + "mouse.webp"], _tux(M + "rodents/mouse")),
    "rabbit": ([M + "rodents/rabbit", LANG_IMG + "rabbit.webp"], _tux(M + "rodents/rabbit")),
    "squirrel": ([M + "rodents/squirrel"], _tux(M + "rodents/squirrel")),
    "koala": (["animals/marsupials/koala"], _tux("animals/marsupials/koala")),
    "violin": ([MUSIC + "string/violin", INSTRUMENT_SVG + "violin.svg", OC_MUSIC + "violin_colour_ganson"],
               _tux(MUSIC + "string/violin") + ["gc:instruments:violin.ogg"] + _sf(*GM_FONTS)),
    "cello": ([MUSIC + "string/cello", INSTRUMENT_SVG + "cello.svg", OC_MUSIC + "cello_ganson"],
              _tux(MUSIC + "string/cello") + ["gc:instruments:cello.ogg"] + _sf(*GM_FONTS)),
    # gcompris' drum_kit.ogg is under CC Sampling Plus 1.0, so it is left out on purpose.
    "drum_kit": ([MUSIC + "percussion/drumkit", INSTRUMENT_SVG + "drum_kit.svg", OC_MUSIC + "drums_jarno_vasamaa_"],
                 _tux(MUSIC + "percussion/drumkit") + _sf(*DRUM_FONTS)),
    "cymbal": ([MUSIC + "percussion/cymbal_crash", INSTRUMENT_SVG + "cymbal.svg"],
               _tux(MUSIC + "percussion/cymbal_crash") + ["gc:instruments:cymbal.ogg"] + _sf(*DRUM_FONTS)),
    "tom_tom": ([MUSIC + "percussion/drum_tomtom_floor"],
                _tux(MUSIC + "percussion/drum_tomtom_floor") + _sf(*DRUM_FONTS)),
    "bassoon": ([MUSIC + "wind/bassoon"], _tux(MUSIC + "wind/bassoon") + _sf(*GM_FONTS)),
    "guitar": ([MUSIC + "string/guitar_classical", MUSIC + "string/guitar2", INSTRUMENT_SVG + "guitar.svg",
                OC_MUSIC + "guitar_jarno_vasamaa1"],
               ["gc:instruments:guitar.ogg"]
               + [f"gc:memory-sound:guitar_son{i}.ogg" for i in range(1, 5)] + _sf(*GM_FONTS)),
    "electric_guitar": ([MUSIC + "string/guitar_electric", INSTRUMENT_SVG + "electric_guitar.svg",
                         OC_MUSIC + "electric_guitar_andrea__01r"],
                        ["gc:instruments:electric_guitar.ogg"] + _sf(*GM_FONTS)),
    "trumpet": ([MUSIC + "brass/trumpet", INSTRUMENT_SVG + "trumpet.svg", OC_MUSIC + "trumpet_b_flat_colour_ganso",
                 OC_MUSIC + "trumpet_pocket_colour_ganso"],
                ["gc:instruments:trumpet.ogg"] + _sf(*GM_FONTS)),
    "kettle": (["household/kettle"], _tux("household/kettle")),
    "toilet": (["household/toilet"], _tux("household/toilet")),
    "saw": (["household/tools/saw"], _tux("household/tools/saw")),
    "glass": (["household/dishes/glass"], _tux("household/dishes/glass")),
    "camera": (["hobbies/camera_35mm"], _tux("hobbies/camera_35mm") + ["fd:camera-shutter"]),
    "fire_truck": (["vehicles/emergency/firetruck"], _tux("vehicles/emergency/firetruck")),
}

# Real photos of heard classes (gcompris-qt-data's Wikimedia Commons photos, credited in each
# activity's resource README): "gcphoto:<archive>:<member>" -> (label, boxes). The boxes were
# drawn by hand by the avsdk developers around every animal of the class covering >= ~2 % of
# the photo, as fractions (x0, y0, x1, y1) of its width and height.
PHOTOS_ANNOTATION = "boxes drawn by hand by the avsdk developers (2026), fractions of width and height"
PHOTOS: dict[str, tuple[str, list[tuple[float, float, float, float]]]] = {
    "gcphoto:explore_farm_animals:animals/chicken.webp": ("chicken", [(0.039, 0.18, 0.217, 0.754), (0.362, 0.11, 0.548, 0.745), (0.503, 0.183, 0.7, 0.808), (0.688, 0.192, 0.972, 0.885)]),  # four hens; the two middle ones overlap
    "gcphoto:explore_farm_animals:animals/cow.webp": ("cow", [(0.228, 0.381, 0.903, 0.896), (0.255, 0.233, 0.414, 0.367)]),  # large cow in front plus one grazing cow behind it; a third d
    "gcphoto:explore_farm_animals:animals/dog.webp": ("dog", [(0.037, 0.033, 0.889, 0.94)]),  # one German shepherd, tail to ear tips
    "gcphoto:explore_farm_animals:animals/duck.webp": ("duck", [(0.12, 0.217, 0.809, 0.899)]),  # one white duck
    "gcphoto:explore_farm_animals:animals/horse.webp": ("horse", [(0.12, 0.299, 0.369, 0.834), (0.32, 0.34, 0.548, 0.839), (0.503, 0.455, 0.645, 0.834), (0.569, 0.342, 0.891, 0.841), (0.252, 0.636, 0.466, 0.863)]),  # five horses: 3 adults, a standing foal and a lying foal; hea
    "gcphoto:explore_farm_animals:animals/pig.webp": ("pig", [(0.158, 0.233, 0.619, 0.819)]),  # one piglet
    "gcphoto:explore_farm_animals:animals/sheep.webp": ("sheep", [(0.231, 0.112, 0.711, 0.909)]),  # one sheep
    "gcphoto:erase:calf.webp": ("cow", [(0.091, 0.103, 1.0, 1.0)]),  # close-up of a calf's head and body; cut off at the right and
    "gcphoto:erase:camels.webp": ("camel", [(0.338, 0.117, 0.944, 0.869), (0.047, 0.394, 0.38, 0.847)]),  # an adult Bactrian camel and a calf
    "gcphoto:erase:horse.webp": ("horse", [(0.097, 0.1, 0.614, 0.964)]),  # one pony
}

# Background photos: monuments and landscapes without animals or instruments in them.
BACKGROUND_ARCHIVES = {
    "default": [("explore_monuments", "")],
    "full": [("explore_monuments", ""), ("categorization", "images/monuments/")],
}

# Licence of each source, by package and (for gcompris) by activity archive.
LICENCES = {
    "tuxpaint-stamps-default": "GPL-2.0-or-later",
    ("sound-theme-freedesktop", "camera-shutter"): "CC-BY-SA-3.0",  # freesound user horsthorstensen
    ("gcompris-qt-data", "explore_farm_animals"): "GPL-3.0-or-later",
    ("gcompris-qt-data", "instruments"): "GPL-3.0-or-later",
    ("gcompris-qt-data", "memory-sound"): "LAL-1.2",  # Free Art License, resource/Licence.txt
    # the SVG drawings (resource/README of each activity)
    ("gcompris-qt-data", "explore_farm_animals", "svg"): "CC-BY-SA-4.0",  # Timothée Giet, 2020
    ("gcompris-qt-data", "instruments", "svg"): "GPL-3.0-or-later",
    ("gcompris-qt-data", "memory", "svg"): "GPL-3.0-or-later",  # Mathieu Ignacio (debian/copyright)
    ("gcompris-qt-data", "lang", "img"): "CC-BY-SA-3.0",  # Arts4Apps (debian/copyright)
    "openclipart-svg": "Public-Domain",  # Creative Commons Public Domain Dedication (debian/copyright)
    "0ad-data": "CC-BY-SA-3.0",  # Wildfire Games (debian/copyright, Files: *)
    "widelands-data": "GPL-2.0-or-later",  # Widelands Development Team (debian/copyright, Files: *)
}
