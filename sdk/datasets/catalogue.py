"""Which Debian-packaged media make up the real-parts benchmark.

Each class pairs Tux Paint photographic cut-outs with real recordings of the same kind of
object. Sound references are short strings:
    "tux:<stamp>"                   the Tux Paint stamp's own recording (<stamp>.ogg)
    "gc:<archive>:<member>"         a file inside gcompris-qt-data's rcc/<archive>.rcc,
                                    <member> relative to the activity's resource/ folder
    "fd:<name>"                     sound-theme-freedesktop's stereo/<name>.oga
Stamps are paths below usr/share/tuxpaint/stamps/ without the extension. Only used by
make_asset_pack.py; the builder reads the resulting manifest, not this table.
"""
from __future__ import annotations

PACKAGES = ("tuxpaint-stamps-default", "gcompris-qt-data", "sound-theme-freedesktop")

TUX_STAMPS = "usr/share/tuxpaint/stamps"
GC_RCC = "usr/share/gcompris-qt/rcc"
FD_SOUNDS = "usr/share/sounds/freedesktop/stereo"

M = "animals/mammals/"
B = "animals/birds/"
MUSIC = "hobbies/music/"


def _tux(*stamps: str) -> list[str]:
    return [f"tux:{s}" for s in stamps]


# label -> (cut-out stamps, recordings). A recording that duplicates an earlier one (same
# audio under two stamp names) is detected and dropped by make_asset_pack.py.
CLASSES: dict[str, tuple[list[str], list[str]]] = {
    "cow": ([M + "bovines/cow", M + "bovines/cow_white", M + "bovines/bull"],
            _tux(M + "bovines/cow", M + "bovines/cow_white", M + "bovines/bull")
            + ["gc:explore_farm_animals:animals/cow.ogg"]),
    "pig": ([M + "pig", M + "pig_golden", M + "pig_golden2"],
            _tux(M + "pig", M + "pig_golden", M + "pig_golden2")
            + ["gc:explore_farm_animals:animals/pig.ogg"]),
    "sheep": ([M + "bovines/sheep", M + "bovines/sheep_lamb"],
              _tux(M + "bovines/sheep", M + "bovines/sheep_lamb")
              + ["gc:explore_farm_animals:animals/sheep.ogg"]),
    "goat": ([M + "bovines/goat", M + "bovines/mountaingoat", M + "bovines/ram"],
             _tux(M + "bovines/goat", M + "bovines/mountaingoat", M + "bovines/ram")),
    "dog": ([M + "dogs/dog"],
            _tux(M + "dogs/dog") + ["gc:explore_farm_animals:animals/dog.ogg",
                                    "gc:memory-sound:LRBark_1_LA_cut.ogg",
                                    "gc:memory-sound:LRBark_3_LA_cut.ogg"]),
    "horse": ([M + "equines/horse"],
              _tux(M + "equines/horse") + ["gc:explore_farm_animals:animals/horse.ogg"]),
    "duck": ([B + "duck", B + "drake"],
             _tux(B + "duck", B + "drake") + ["gc:explore_farm_animals:animals/duck.ogg"]),
    "chicken": ([B + "hen", B + "chicken_profile"],
                _tux(B + "hen") + ["gc:explore_farm_animals:animals/chickens.ogg"]),
    "owl": ([B + "owl"], _tux(B + "owl") + ["gc:explore_farm_animals:animals/owl.ogg"]),
    "frog": (["animals/amphibians/frog", "animals/amphibians/frog-1"],
             _tux("animals/amphibians/frog") + ["gc:memory-sound:LRFrogsInPondDuringStormLACut.ogg"]),
    "rooster": ([B + "rooster"], _tux(B + "rooster")),
    "goose": ([B + "gander"], _tux(B + "gander")),
    "crow": ([B + "crow"], _tux(B + "crow")),
    "cuckoo": ([B + "cuckoo"], _tux(B + "cuckoo")),
    "blackbird": ([B + "blackbird"], _tux(B + "blackbird")),
    "lark": ([B + "lark"], _tux(B + "lark")),
    "seagull": ([B + "seagull"], _tux(B + "seagull")),
    "penguin": ([B + "penguin"], _tux(B + "penguin")),
    "turkey": ([B + "turkey"], _tux(B + "turkey")),
    "vulture": ([B + "vulture"], _tux(B + "vulture")),
    "toucan": ([B + "tucan"], _tux(B + "tucan")),
    "bee": (["animals/insects/bee"], _tux("animals/insects/bee")),
    "hornet": (["animals/insects/hornet"], _tux("animals/insects/hornet")),
    "grasshopper": (["animals/insects/grasshopper"], _tux("animals/insects/grasshopper")),
    "chimpanzee": ([M + "apes/chimp"], _tux(M + "apes/chimp")),
    "gorilla": ([M + "apes/gorilla"], _tux(M + "apes/gorilla")),
    "dolphin": ([M + "aquatic/dolphin"], _tux(M + "aquatic/dolphin")),
    "orca": ([M + "aquatic/orca"], _tux(M + "aquatic/orca")),
    "sea_lion": ([M + "aquatic/sea_lion"], _tux(M + "aquatic/sea_lion")),
    "whale": ([M + "aquatic/whale"], _tux(M + "aquatic/whale")),
    # Tux Paint's badger and beaver share one recording; the class keeps the badger picture.
    "badger": ([M + "badger"], _tux(M + "badger", M + "rodents/beaver")),
    "bear": ([M + "bears/bear"], _tux(M + "bears/bear")),
    "bison": ([M + "bovines/bison"], _tux(M + "bovines/bison")),
    "camel": ([M + "camel/camel", M + "camel/dromedary"],
              _tux(M + "camel/camel", M + "camel/dromedary")),
    "lion": ([M + "cats/lion"], _tux(M + "cats/lion")),
    "tiger": ([M + "cats/tiger"], _tux(M + "cats/tiger")),
    "deer": ([M + "deer/deer", M + "deer/doe", M + "deer/caribou"],
             _tux(M + "deer/deer", M + "deer/doe", M + "deer/caribou")),
    "fox": ([M + "dogs/fox"], _tux(M + "dogs/fox")),
    "elephant": ([M + "elephant"], _tux(M + "elephant")),
    "donkey": ([M + "equines/donkey"], _tux(M + "equines/donkey")),
    "zebra": ([M + "equines/zebra"], _tux(M + "equines/zebra")),
    "giraffe": ([M + "giraffe"], _tux(M + "giraffe")),
    "hippopotamus": ([M + "hippopotamus"], _tux(M + "hippopotamus")),
    "mouse": ([M + "rodents/mouse"], _tux(M + "rodents/mouse")),
    "rabbit": ([M + "rodents/rabbit"], _tux(M + "rodents/rabbit")),
    "squirrel": ([M + "rodents/squirrel"], _tux(M + "rodents/squirrel")),
    "koala": (["animals/marsupials/koala"], _tux("animals/marsupials/koala")),
    "violin": ([MUSIC + "string/violin"],
               _tux(MUSIC + "string/violin") + ["gc:instruments:violin.ogg"]),
    "cello": ([MUSIC + "string/cello"],
              _tux(MUSIC + "string/cello") + ["gc:instruments:cello.ogg"]),
    # gcompris' drum_kit.ogg is under CC Sampling Plus 1.0, so it is left out on purpose.
    "drum_kit": ([MUSIC + "percussion/drumkit"], _tux(MUSIC + "percussion/drumkit")),
    "cymbal": ([MUSIC + "percussion/cymbal_crash"],
               _tux(MUSIC + "percussion/cymbal_crash") + ["gc:instruments:cymbal.ogg"]),
    "tom_tom": ([MUSIC + "percussion/drum_tomtom_floor"], _tux(MUSIC + "percussion/drum_tomtom_floor")),
    "bassoon": ([MUSIC + "wind/bassoon"], _tux(MUSIC + "wind/bassoon")),
    "guitar": ([MUSIC + "string/guitar_classical", MUSIC + "string/guitar2"],
               ["gc:instruments:guitar.ogg"]
               + [f"gc:memory-sound:guitar_son{i}.ogg" for i in range(1, 5)]),
    "electric_guitar": ([MUSIC + "string/guitar_electric"], ["gc:instruments:electric_guitar.ogg"]),
    "trumpet": ([MUSIC + "brass/trumpet"], ["gc:instruments:trumpet.ogg"]),
    "kettle": (["household/kettle"], _tux("household/kettle")),
    "toilet": (["household/toilet"], _tux("household/toilet")),
    "saw": (["household/tools/saw"], _tux("household/tools/saw")),
    "glass": (["household/dishes/glass"], _tux("household/dishes/glass")),
    "camera": (["hobbies/camera_35mm"], _tux("hobbies/camera_35mm") + ["fd:camera-shutter"]),
    "fire_truck": (["vehicles/emergency/firetruck"], _tux("vehicles/emergency/firetruck")),
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
}
