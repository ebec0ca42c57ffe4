"""A beer-sample-like data set, made the same way every time from a seed.

Couchbase's beer-sample bucket holds real beers and breweries; this one is invented, with the
same document shapes (``type`` "beer" or "brewery", a beer's ``brewery_id``, a brewery's
address and ``geo``), so that the demo needs no download. The same seed and counts give the
same documents, ids and all, which makes loading idempotent: a second run finds every id.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

SEED = 2013
BREWERIES = 1_400
BEERS = 6_000
UPDATED = "2010-07-22 20:00:20"  # beer-sample's documents all carry one such date

# (category, style, short name used in beer names, abv range, ibu range, srm range)
STYLES = (
    ("North American Ale", "American-Style India Pale Ale", "IPA", (5.5, 7.5), (50, 70), (6, 14)),
    ("North American Ale", "American-Style Pale Ale", "Pale Ale", (4.5, 6.2), (28, 50), (6, 14)),
    ("North American Ale", "American-Style Amber/Red Ale", "Amber", (4.4, 6.1), (25, 45), (11, 18)),
    ("North American Ale", "American-Style Stout", "Stout", (5.7, 8.9), (35, 60), (40, 40)),
    ("North American Ale", "American-Style Brown Ale", "Brown Ale", (4.0, 6.4), (25, 45), (15, 26)),
    ("North American Lager", "American-Style Lager", "Lager", (4.1, 5.1), (5, 15), (2, 4)),
    ("North American Lager", "American-Style Light Lager", "Light", (3.5, 4.4), (4, 10), (2, 4)),
    ("British Ale", "Classic English-Style Pale Ale", "Bitter", (4.5, 5.5), (20, 40), (5, 12)),
    ("British Ale", "Porter", "Porter", (5.0, 6.5), (20, 40), (20, 35)),
    ("British Ale", "Old Ale", "Old Ale", (6.0, 9.0), (30, 65), (12, 30)),
    ("British Ale", "Scotch Ale", "Scotch Ale", (6.2, 8.0), (25, 35), (15, 30)),
    ("Irish Ale", "Irish-Style Red Ale", "Red", (4.0, 4.8), (20, 28), (11, 18)),
    ("Irish Ale", "Irish-Style Dry Stout", "Dry Stout", (3.8, 5.0), (30, 40), (40, 40)),
    ("German Lager", "German-Style Pilsener", "Pils", (4.6, 5.3), (25, 40), (3, 4)),
    ("German Lager", "Munich Dunkel", "Dunkel", (4.8, 5.3), (16, 25), (15, 20)),
    ("German Lager", "Traditional German-Style Bock", "Bock", (6.3, 7.5), (20, 30), (20, 30)),
    ("German Lager", "German-Style Doppelbock", "Doppelbock", (6.5, 8.0), (17, 27), (12, 30)),
    ("German Lager", "German-Style Oktoberfest", "Märzen", (5.3, 5.9), (20, 28), (4, 15)),
    ("German Ale", "South German-Style Hefeweizen", "Hefeweizen", (4.9, 5.5), (10, 15), (3, 9)),
    ("German Ale", "German-Style Kölsch", "Kölsch", (4.8, 5.3), (18, 25), (3, 6)),
    ("German Ale", "German-Style Altbier", "Alt", (4.6, 5.6), (25, 52), (11, 19)),
    ("Belgian and French Ale", "Belgian-Style Tripel", "Tripel", (7.1, 10.1), (20, 45), (4, 9)),
    ("Belgian and French Ale", "Belgian-Style Dubbel", "Dubbel", (6.3, 7.6), (20, 35), (16, 36)),
    ("Belgian and French Ale", "Belgian-Style White", "Witbier", (4.8, 5.6), (10, 17), (2, 4)),
    (
        "Belgian and French Ale",
        "French & Belgian-Style Saison",
        "Saison",
        (4.4, 7.3),
        (20, 38),
        (4, 14),
    ),
    (
        "Belgian and French Ale",
        "Belgian-Style Pale Strong Ale",
        "Strong Golden",
        (7.1, 11.2),
        (20, 50),
        (3, 5),
    ),
    ("Other Style", "Fruit Beer", "Fruit Beer", (2.5, 12.0), (5, 45), (5, 50)),
    ("Other Style", "Herb and Spice Beer", "Spiced Ale", (2.5, 12.0), (5, 40), (5, 50)),
    (
        "Other Style",
        "Wood- and Barrel-Aged Strong Beer",
        "Barrel-Aged",
        (7.0, 12.5),
        (30, 70),
        (15, 40),
    ),
)

# (city, state or region, country, postal code, latitude, longitude)
CITIES = (
    ("Portland", "Oregon", "United States", "97209", 45.5231, -122.6765),
    ("San Diego", "California", "United States", "92101", 32.7157, -117.1611),
    ("Chico", "California", "United States", "95928", 39.7285, -121.8375),
    ("Denver", "Colorado", "United States", "80202", 39.7392, -104.9903),
    ("Fort Collins", "Colorado", "United States", "80524", 40.5853, -105.0844),
    ("Asheville", "North Carolina", "United States", "28801", 35.5951, -82.5515),
    ("Milton", "Delaware", "United States", "19968", 38.7776, -75.3099),
    ("Brooklyn", "New York", "United States", "11211", 40.6782, -73.9442),
    ("Burlington", "Vermont", "United States", "05401", 44.4759, -73.2121),
    ("Boston", "Massachusetts", "United States", "02210", 42.3601, -71.0589),
    ("Chicago", "Illinois", "United States", "60622", 41.8781, -87.6298),
    ("Milwaukee", "Wisconsin", "United States", "53204", 43.0389, -87.9065),
    ("Grand Rapids", "Michigan", "United States", "49503", 42.9634, -85.6681),
    ("Kalamazoo", "Michigan", "United States", "49007", 42.2917, -85.5872),
    ("Austin", "Texas", "United States", "78701", 30.2672, -97.7431),
    ("Seattle", "Washington", "United States", "98107", 47.6062, -122.3321),
    ("Bend", "Oregon", "United States", "97702", 44.0582, -121.3153),
    ("Philadelphia", "Pennsylvania", "United States", "19123", 39.9526, -75.1652),
    ("Minneapolis", "Minnesota", "United States", "55413", 44.9778, -93.2650),
    ("St. Louis", "Missouri", "United States", "63118", 38.6270, -90.1994),
    ("Toronto", "Ontario", "Canada", "M5V 2H1", 43.6532, -79.3832),
    ("Montréal", "Quebec", "Canada", "H2X 1Y4", 45.5017, -73.5673),
    ("Vancouver", "British Columbia", "Canada", "V6B 1A1", 49.2827, -123.1207),
    ("Brussels", "Brussels", "Belgium", "1000", 50.8503, 4.3517),
    ("Bruges", "West Flanders", "Belgium", "8000", 51.2093, 3.2247),
    ("Leuven", "Flemish Brabant", "Belgium", "3000", 50.8798, 4.7005),
    ("Chimay", "Hainaut", "Belgium", "6460", 50.0484, 4.3167),
    ("Munich", "Bavaria", "Germany", "80331", 48.1351, 11.5820),
    ("Bamberg", "Bavaria", "Germany", "96047", 49.8988, 10.9028),
    ("Cologne", "North Rhine-Westphalia", "Germany", "50667", 50.9375, 6.9603),
    ("Düsseldorf", "North Rhine-Westphalia", "Germany", "40213", 51.2277, 6.7735),
    ("Berlin", "Berlin", "Germany", "10115", 52.5200, 13.4050),
    ("Plzeň", "Plzeň Region", "Czech Republic", "301 00", 49.7384, 13.3736),
    ("Prague", "Prague", "Czech Republic", "110 00", 50.0755, 14.4378),
    ("London", "London", "United Kingdom", "SE1 9AG", 51.5074, -0.1278),
    ("Burton upon Trent", "Staffordshire", "United Kingdom", "DE14 1JZ", 52.8019, -1.6370),
    ("Edinburgh", "Scotland", "United Kingdom", "EH1 1YZ", 55.9533, -3.1883),
    ("Dublin", "Leinster", "Ireland", "D08", 53.3498, -6.2603),
    ("Cork", "Munster", "Ireland", "T12", 51.8985, -8.4756),
    ("Amsterdam", "North Holland", "Netherlands", "1012", 52.3676, 4.9041),
    ("Copenhagen", "Capital Region", "Denmark", "1050", 55.6761, 12.5683),
    ("Oslo", "Oslo", "Norway", "0150", 59.9139, 10.7522),
    ("Stockholm", "Stockholm", "Sweden", "111 52", 59.3293, 18.0686),
    ("Vienna", "Vienna", "Austria", "1010", 48.2082, 16.3738),
    ("Milan", "Lombardy", "Italy", "20121", 45.4642, 9.1900),
    ("Lyon", "Auvergne-Rhône-Alpes", "France", "69002", 45.7640, 4.8357),
    ("Tokyo", "Tokyo", "Japan", "100-0001", 35.6762, 139.6503),
    ("Melbourne", "Victoria", "Australia", "3000", -37.8136, 144.9631),
    ("Wellington", "Wellington", "New Zealand", "6011", -41.2865, 174.7762),
    ("Mexico City", "CDMX", "Mexico", "06000", 19.4326, -99.1332),
)

PLACES = (
    "Copper",
    "Iron",
    "Stone",
    "Oak",
    "Cedar",
    "Granite",
    "River",
    "Harbor",
    "Mill",
    "Bridge",
    "Lantern",
    "Anchor",
    "Fox",
    "Raven",
    "Otter",
    "Badger",
    "Heron",
    "Moose",
    "Bison",
    "Falcon",
    "North",
    "South",
    "Old Town",
    "Hilltop",
    "Lakeside",
    "Valley",
    "Prairie",
    "Summit",
    "Canyon",
    "Orchard",
    "Meadow",
    "Thistle",
    "Juniper",
    "Willow",
    "Maple",
    "Birch",
    "Crooked",
    "Lucky",
    "Blue Door",
    "Red Barn",
    "Silver",
    "Golden",
    "Wandering",
    "Quiet",
    "Salty",
    "Rusty",
)
NOUNS = (
    "Kettle",
    "Barrel",
    "Cask",
    "Hop",
    "Malt",
    "Yard",
    "Works",
    "House",
    "Hall",
    "Cellar",
    "Forge",
    "Wharf",
    "Gate",
    "Field",
    "Creek",
    "Ridge",
    "Pine",
    "Abbey",
    "Tap",
    "Crown",
    "Keel",
    "Wheel",
    "Bell",
    "Stag",
    "Hound",
    "Owl",
    "Bear",
    "Wolf",
    "Crow",
    "Goat",
)
KINDS = (
    "Brewing Company",
    "Brewery",
    "Brewing Co.",
    "Beer Company",
    "Brewhouse",
    "Ales",
    "Craft Brewery",
    "Brauerei",
    "Brasserie",
    "Brewpub",
)
FIRSTS = (
    "Hoppy",
    "Midnight",
    "Golden",
    "Dark",
    "Hazy",
    "Wild",
    "Smoky",
    "Crimson",
    "Winter",
    "Summer",
    "Harvest",
    "Lazy",
    "Angry",
    "Happy",
    "Bitter",
    "Velvet",
    "Thunder",
    "Morning",
    "Evening",
    "Double",
    "Imperial",
    "Session",
    "Little",
    "Big",
    "Old",
    "Young",
    "Royal",
    "Rebel",
    "Lost",
    "Hidden",
    "Electric",
    "Cosmic",
    "Salty",
    "Sunny",
    "Foggy",
    "Frosty",
)
SECONDS = (
    "Otter",
    "Fox",
    "Monk",
    "Sailor",
    "Pilgrim",
    "Raven",
    "Lantern",
    "River",
    "Anchor",
    "Comet",
    "Bandit",
    "Baron",
    "Duchess",
    "Hound",
    "Wizard",
    "Farmer",
    "Tractor",
    "Harbor",
    "Mountain",
    "Orchard",
    "Lighthouse",
    "Compass",
    "Canoe",
    "Trail",
    "Ember",
    "Meteor",
    "Garden",
    "Saint",
)
STREETS = ("Main Street", "Mill Road", "Harbor Way", "Market Street", "Station Road", "Elm Avenue")
TASTES = (
    "bright citrus and pine",
    "toasted malt and caramel",
    "dark chocolate and roast coffee",
    "clove and banana",
    "stone fruit and honey",
    "fresh bread and a clean finish",
    "dried fig and brown sugar",
    "tart cherry and oak",
    "black pepper and orange peel",
)


def slug(text: str) -> str:
    """``text`` as an id piece: ASCII letters and digits, lower case, joined by dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def breweries(count: int = BREWERIES, seed: int = SEED) -> list[dict[str, Any]]:
    """``count`` brewery documents with unique names and ids."""
    rng = random.Random(f"breweries-{seed}")
    found: dict[str, dict[str, Any]] = {}
    while len(found) < count:
        name = f"{rng.choice(PLACES)} {rng.choice(NOUNS)} {rng.choice(KINDS)}"
        if slug(name) in found:
            continue
        city, state, country, code, lat, lon = rng.choice(CITIES)
        found[slug(name)] = {
            "_id": slug(name),
            "type": "brewery",
            "name": name,
            "city": city,
            "state": state,
            "code": code,
            "country": country,
            "phone": f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            "website": f"http://www.{slug(name).replace('-', '')}.example/",
            "updated": UPDATED,
            "description": f"A {rng.choice(('small', 'family', 'neighbourhood', 'riverside'))}"
            f" brewery in {city} known for {rng.choice(TASTES)}.",
            "address": [f"{rng.randint(1, 2999)} {rng.choice(STREETS)}"],
            "geo": {
                "accuracy": rng.choice(("ROOFTOP", "RANGE_INTERPOLATED", "APPROXIMATE")),
                "lat": round(lat + rng.uniform(-0.05, 0.05), 4),
                "lon": round(lon + rng.uniform(-0.05, 0.05), 4),
            },
        }
    return list(found.values())


def beers(
    brewery_docs: list[dict[str, Any]], count: int = BEERS, seed: int = SEED
) -> list[dict[str, Any]]:
    """``count`` beer documents, each of one of ``brewery_docs``; ids unique."""
    rng = random.Random(f"beers-{seed}")
    found: dict[str, dict[str, Any]] = {}
    while len(found) < count:
        brewery = rng.choice(brewery_docs)
        category, style, short, abv, ibu, srm = rng.choice(STYLES)
        name = f"{rng.choice(FIRSTS)} {rng.choice(SECONDS)} {short}"
        doc_id = f"{brewery['_id']}-{slug(name)}"
        if doc_id in found:
            continue
        found[doc_id] = {
            "_id": doc_id,
            "type": "beer",
            "name": name,
            "brewery_id": brewery["_id"],
            "abv": round(rng.uniform(*abv), 1),
            "ibu": rng.randint(*ibu),
            "srm": rng.randint(*srm),
            "upc": rng.randint(0, 99_999_999) if rng.random() < 0.3 else 0,
            "style": style,
            "category": category,
            "updated": UPDATED,
            "description": f"{short} brewed by {brewery['name']}, with {rng.choice(TASTES)}.",
        }
    return list(found.values())


def documents(
    brewery_count: int = BREWERIES, beer_count: int = BEERS, seed: int = SEED
) -> Iterator[dict[str, Any]]:
    """Every document of the data set: the breweries, then their beers."""
    brewery_docs = breweries(brewery_count, seed)
    yield from brewery_docs
    yield from beers(brewery_docs, beer_count, seed)
