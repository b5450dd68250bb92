"""Generate the demo's contacts file and 30-day event stream (run once; the output is committed).

    python workflows/demo_data/generate.py

The data is made up but shaped like a small Dutch web shop: a semicolon-separated contact export
as Dutch spreadsheets write it, and a stream of sign-ups, product views, checkouts, orders
(some right away, some after reminders, most never) and cleared carts. A fixed seed makes the
files identical on every run.
"""

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

SEED = 20261102
START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
DAYS = 30
HERE = Path(__file__).resolve().parent

FIRST_NAMES = [
    "Anna",
    "Bram",
    "Daan",
    "Emma",
    "Fenna",
    "Gijs",
    "Hanna",
    "Isa",
    "Jesse",
    "Julia",
    "Lars",
    "Lieke",
    "Lotte",
    "Luuk",
    "Maud",
    "Milan",
    "Noor",
    "Olivier",
    "Puck",
    "Ruben",
    "Sanne",
    "Sem",
    "Sophie",
    "Thijs",
    "Tess",
    "Vera",
    "Wouter",
    "Yara",
    "Zoë",
    "Anouk",
    "Bas",
    "Chloë",
    "Dewi",
    "Femke",
    "Joris",
    "Mees",
    "Renée",
]
INFIXES = ["", "", "", "", "van", "de", "van der", "van den", "ter"]
LAST_NAMES = [
    "Jansen",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "Mulder",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "Dijkstra",
    "Berg",
    "Dekker",
    "Brink",
    "Hoek",
    "Kok",
    "Maas",
    "Vries",
    "Leeuwen",
    "Groot",
    "Wal",
    "Boer",
    "Graaf",
]
CITIES = [
    ("Amsterdam", "1012"),
    ("Rotterdam", "3011"),
    ("Utrecht", "3511"),
    ("Den Haag", "2511"),
    ("Eindhoven", "5611"),
    ("Groningen", "9711"),
    ("Zwolle", "8011"),
    ("Haarlem", "2011"),
    ("Leiden", "2311"),
    ("Nijmegen", "6511"),
]
PRODUCTS = [
    ("Koffiebonen Espresso 1 kg", "24.95", "koffie"),
    ("Filterkoffie Colombia 500 g", "12.50", "koffie"),
    ("Theeselectie Groen", "9.95", "thee"),
    ("Dubbelwandig glas (2 st.)", "19.95", "servies"),
    ("Melkopschuimer", "39.00", "apparaten"),
    ("Handmolen RVS", "54.00", "apparaten"),
    ("Koffiecapsules Lungo (50 st.)", "17.50", "koffie"),
    ("Chocolade hazelnoot", "4.95", "zoetwaren"),
]
CONTACTS_IN_FILE = 160
NEW_SIGNUPS = 90


def person(rng: random.Random, number: int) -> dict:
    first = rng.choice(FIRST_NAMES)
    infix = rng.choice(INFIXES)
    last = rng.choice(LAST_NAMES)
    local = f"{first}.{(infix + ' ' if infix else '')}{last}".lower().replace(" ", "")
    local = local.translate(str.maketrans("ëéè", "eee"))
    city, postcode = rng.choice(CITIES)
    return {
        "first": first,
        "infix": infix,
        "last": last,
        "email": f"{local}{number}@example.com",
        "phone": f"06 {rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
        "city": city,
        "postcode": f"{postcode} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}",
    }


def line_items(rng: random.Random) -> tuple[list[dict], Decimal]:
    items, total = [], Decimal("0")
    for title, price, category in rng.sample(PRODUCTS, rng.randint(1, 3)):
        quantity = rng.choice([1, 1, 1, 2])
        items.append({"title": title, "price": price, "quantity": quantity, "category": category})
        total += Decimal(price) * quantity
    return items, total


def main() -> None:
    rng = random.Random(SEED)
    people = [person(rng, number) for number in range(1, CONTACTS_IN_FILE + NEW_SIGNUPS + 1)]
    in_file, newcomers = people[:CONTACTS_IN_FILE], people[CONTACTS_IN_FILE:]

    # The contact file as a Dutch Excel "CSV (puntkomma)" save writes it: semicolons, Windows-1252.
    with open(HERE / "contacts.csv", "w", encoding="cp1252", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
        writer.writerow(
            ["Voornaam", "Tussenvoegsel", "Achternaam", "E-mail", "Telefoon", "Plaats", "Postcode", "Nieuwsbrief", "Tags"]
        )
        for row in in_file:
            newsletter = "ja" if rng.random() < 0.8 else "nee"
            tags = rng.choice(["", "", "klant", "klant, koffie", "zakelijk"])
            writer.writerow(
                [
                    row["first"],
                    row["infix"],
                    row["last"],
                    row["email"],
                    row["phone"],
                    row["city"],
                    row["postcode"],
                    newsletter,
                    tags,
                ]
            )

    events: list[dict] = []
    counter = 0

    def add(kind: str, who: dict, at: datetime, properties: dict) -> None:
        nonlocal counter
        counter += 1
        events.append(
            {
                "id": f"demo-{counter:05d}",
                "type": kind,
                "email": who["email"],
                "occurred_at": at.isoformat(),
                "properties": properties,
            }
        )

    def shop(who: dict, at: datetime, outcome: str) -> None:
        token = f"chk{rng.getrandbits(48):012x}"
        items, total = line_items(rng)
        for item in items:
            add(
                "product_viewed",
                who,
                at - timedelta(minutes=rng.randint(3, 20)),
                {"title": item["title"], "category": item["category"], "price": item["price"]},
            )
        checkout = {
            "token": token,
            "total_price": str(total),
            "currency": "EUR",
            "line_items": items,
            "abandoned_checkout_url": f"https://shop.example.com/checkouts/{token}/recover",
        }
        add("checkout_started", who, at, checkout)
        order = {"checkout_token": token, "total_price": str(total), "currency": "EUR", "line_items": items}
        if outcome == "buy_now":
            add("order_placed", who, at + timedelta(minutes=rng.randint(4, 40)), {**order, "order_id": f"#{1000 + counter}"})
        elif outcome == "recover":
            add(
                "order_placed",
                who,
                at + timedelta(hours=rng.choice([2, 5, 20, 27, 50, 52, 70])),
                {**order, "order_id": f"#{1000 + counter}"},
            )
        elif outcome == "clear":
            add("cart_cleared", who, at + timedelta(hours=rng.randint(2, 30)), {"token": token})

    def random_time(day_from: float, day_to: float) -> datetime:
        at = START + timedelta(days=rng.uniform(day_from, day_to))
        # Shoppers are awake: move night-time activity into the day.
        return at.replace(hour=rng.randint(7, 21), minute=rng.randint(0, 59), second=0, microsecond=0)

    for who in newcomers:
        signed_up = random_time(0, DAYS - 2)
        add(
            "signed_up",
            who,
            signed_up,
            {"first_name": who["first"], "accepts_marketing": rng.random() < 0.92, "source": "footer form"},
        )
        roll = rng.random()
        if roll < 0.16:
            shop(who, signed_up + timedelta(days=rng.uniform(0.3, 12)), "buy_now")
        elif roll < 0.30:
            shop(who, signed_up + timedelta(days=rng.uniform(0.3, 10)), rng.choice(["recover", "abandon", "abandon"]))

    for who in in_file:
        for _visit in range(rng.choice([0, 0, 1, 1, 2])):
            outcome = rng.choices(["buy_now", "recover", "abandon", "clear"], weights=[40, 14, 38, 8])[0]
            shop(who, random_time(0, DAYS - 1), outcome)

    events = [event for event in events if datetime.fromisoformat(event["occurred_at"]) < START + timedelta(days=DAYS)]
    events.sort(key=lambda event: (event["occurred_at"], event["id"]))
    with open(HERE / "events.jsonl", "w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event, ensure_ascii=False) + "\n")
    print(f"{len(in_file)} contacts, {len(events)} events")


if __name__ == "__main__":
    main()
