"""Dynamic blocks in a message: cart, order, viewed product and recommendations, with full and missing data."""

import re
from datetime import timedelta

import pytest

from campaigns import recommendations
from campaigns.models import MessageTemplate
from campaigns.rendering import RenderError, render_email
from contacts.models import Contact, Event

CART = {
    "currency": "EUR",
    "total_price": "59.40",
    "line_items": [
        {
            "product_id": "101",
            "title": "Linnen schort",
            "variant_title": "Naturel",
            "price": "24.95",
            "quantity": 2,
            "image_url": "https://cdn.example.com/schort.jpg",
            "url": "https://shop.example.com/products/schort",
        },
        {"product_id": "102", "title": "Theedoek", "price": "9.50", "quantity": 1},
    ],
}
VIEWED = {
    "title": "Stenen mok",
    "price": "14.00",
    "category": "Keuken",
    "image_url": "https://cdn.example.com/mok.jpg",
    "url": "https://shop.example.com/products/mok",
}


@pytest.fixture(autouse=True)
def _fresh_ranking():
    recommendations.clear_cache()
    yield
    recommendations.clear_cache()


def message(body: str, **fields) -> MessageTemplate:
    return MessageTemplate(name="Blokken", subject=fields.pop("subject", "Onderwerp"), body=body, **fields)


def dutch(first_name: str = "Anna") -> Contact:
    """A contact without a language of their own, so the site's Dutch applies: prices as "€ 24,95"."""
    return Contact(email="anna@example.com", first_name=first_name)


def english(first_name: str = "Anna") -> Contact:
    """A contact who reads English; block labels and fallbacks are asserted in English until Dutch ones are translated."""
    return Contact(email="anna@example.com", first_name=first_name, language="en")


def block_html(html: str) -> str:
    match = re.search(r'<table class="block[^"]*".*?</table>', html, re.DOTALL)
    assert match is not None, html
    return match.group(0)


def place_order(contact: Contact, at, *items: dict) -> None:
    Event.objects.create(
        source=Event.Source.API, type="order_placed", contact=contact, occurred_at=at, properties={"line_items": list(items)}
    )


# Cart.


def test_cart_block_lists_items_in_text():
    rendered = render_email(message("Je mandje:\n\n{% cart_items %}"), dutch(), trigger=CART)

    assert rendered.text == (
        "Je mandje:\n\n"
        "- Linnen schort (Naturel), 2 × € 24,95 = € 49,90\n"
        "  https://shop.example.com/products/schort\n"
        "- Theedoek, 1 × € 9,50"
    )


def test_cart_block_html_has_image_and_link():
    rendered = render_email(message("{% cart_items %}"), dutch(), trigger=CART)

    block = block_html(rendered.html)
    assert 'src="https://cdn.example.com/schort.jpg"' in block
    assert 'alt="Linnen schort"' in block
    assert 'href="https://shop.example.com/products/schort"' in block
    assert "2 × € 24,95 = € 49,90" in block
    assert block.count('class="item"') == 2


def test_cart_block_link_is_tracked():
    rendered = render_email(message("{% cart_items %}"), dutch(), trigger=CART, track_link=lambda url: "https://t.example.com/c")

    assert rendered.links == ["https://shop.example.com/products/schort"]
    assert 'href="https://t.example.com/c"' in rendered.html


def test_cart_block_english_prices():
    rendered = render_email(message("{% cart_items %}"), english(), trigger=CART)

    assert "- Linnen schort (Naturel), 2 × €24.95 = €49.90" in rendered.text


def test_cart_block_without_items_shows_fallback():
    rendered = render_email(message("{% cart_items %}"), english(), trigger={})

    assert rendered.text == "Your cart is saved for you."
    assert '<p class="block block-fallback"' in rendered.html


def test_cart_block_own_fallback():
    rendered = render_email(message('{% cart_items fallback="Bekijk je mandje in de winkel." %}'), dutch(), trigger={})

    assert rendered.text == "Bekijk je mandje in de winkel."


def test_cart_block_empty_fallback_renders_nothing():
    rendered = render_email(message('Hoi\n\n{% cart_items fallback="" %}'), dutch(), trigger={"line_items": []})

    assert rendered.text == "Hoi"
    assert "block" not in rendered.html.split("<body", 1)[1].split("footer")[0]


def test_cart_item_without_price_or_image():
    trigger = {"line_items": [{"title": "Cadeaubon"}]}

    rendered = render_email(message("{% cart_items %}"), dutch(), trigger=trigger)

    assert rendered.text == "- Cadeaubon"
    assert "<img" not in block_html(rendered.html)


def test_cart_item_without_title_skipped():
    trigger = {"line_items": [{"price": "3.00"}, "not an item", {"title": "Mok", "price": "8"}]}

    rendered = render_email(message("{% cart_items %}"), dutch(), trigger=trigger)

    assert rendered.text == "- Mok, € 8,00"


def test_cart_item_http_image_dropped():
    trigger = {"line_items": [{"title": "Mok", "image_url": "http://cdn.example.com/mok.jpg"}]}

    rendered = render_email(message("{% cart_items %}"), dutch(), trigger=trigger)

    assert "cdn.example.com" not in rendered.html


def test_cart_item_javascript_link_dropped():
    trigger = {"line_items": [{"title": "Mok", "url": "javascript:alert(1)"}]}

    rendered = render_email(message("{% cart_items %}"), dutch(), trigger=trigger)

    assert "javascript" not in rendered.html
    assert '<span class="item-title"' in rendered.html


def test_cart_item_title_escaped():
    trigger = {"line_items": [{"title": "<script>alert(1)</script> **vet**", "price": "1"}]}

    rendered = render_email(message("{% cart_items %}"), dutch(), trigger=trigger)

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **vet**" in rendered.html


def test_cart_block_shows_ten_items_then_count():
    trigger = {"line_items": [{"title": f"Artikel {number}", "price": "1"} for number in range(12)]}

    rendered = render_email(message("{% cart_items %}"), english(), trigger=trigger)

    assert rendered.text.count("- Artikel") == 10
    assert rendered.text.endswith("and 2 more")
    assert "and 2 more</td>" in rendered.html


def test_block_inside_paragraph_becomes_own_block():
    rendered = render_email(message("Kijk maar: {% cart_items %} Tot snel"), dutch(), trigger=CART)

    assert "<p>Kijk maar: </p>\n<table" in rendered.html
    assert "</table>\n\n<p>Tot snel</p>" in rendered.html
    assert rendered.text.startswith("Kijk maar:\n\n- Linnen schort")
    assert "- Theedoek, 1 × € 9,50\n\n" in rendered.text
    assert rendered.text.endswith("Tot snel")


def test_block_unknown_option_rejected():
    with pytest.raises(RenderError, match="cart_items has no option colour"):
        render_email(message('{% cart_items colour="rood" %}'), dutch(), trigger=CART)


def test_block_positional_argument_rejected():
    with pytest.raises(RenderError, match="takes only name=value options"):
        render_email(message('{% cart_items "rood" %}'), dutch(), trigger=CART)


# Order.


def test_order_block_lists_items_and_total():
    rendered = render_email(message("{% order_items %}"), english(), trigger=CART)

    assert rendered.text.endswith("- Theedoek, 1 × €9.50\nTotal: €59.40")
    assert "Total: €59.40" in block_html(rendered.html)


def test_order_block_without_items_shows_fallback():
    rendered = render_email(message("{% order_items %}"), english(), trigger={"total_price": "10.00"})

    assert rendered.text == "You can find your order in your account."


# Viewed product.


def test_viewed_product_block_shows_product():
    rendered = render_email(message("{% viewed_product %}"), dutch(), trigger=VIEWED)

    assert rendered.text == "- Stenen mok (Keuken), € 14,00\n  https://shop.example.com/products/mok"
    assert 'src="https://cdn.example.com/mok.jpg"' in block_html(rendered.html)


def test_viewed_product_nested_product_object():
    rendered = render_email(message("{% viewed_product %}"), dutch(), trigger={"product": {"name": "Vaas", "price": 30}})

    assert rendered.text == "- Vaas, € 30,00"


def test_viewed_product_missing_shows_fallback():
    rendered = render_email(message("{% viewed_product %}"), english(), trigger={"event_type": "product_viewed"})

    assert rendered.text == "Take another look in our shop."


# Recommendations.


def test_recommendations_rank_by_units_sold(anna, t0):
    place_order(anna, t0, {"title": "Mok", "price": "8", "quantity": 1}, {"title": "Schort", "price": "25", "quantity": 3})
    place_order(anna, t0, {"title": "Vaas", "price": "30", "quantity": 2})

    rendered = render_email(message("{% product_recommendations count=2 %}"), dutch(), trigger={})

    assert rendered.text == "- Schort, € 25,00\n- Vaas, € 30,00"


def test_recommendations_leave_out_cart_items(anna, t0):
    place_order(anna, t0, {"product_id": "101", "title": "Linnen schort", "price": "24.95", "quantity": 9})
    place_order(anna, t0, {"title": "Vaas", "price": "30", "quantity": 1})

    rendered = render_email(message("{% product_recommendations %}"), dutch(), trigger=CART)

    assert rendered.text == "- Vaas, € 30,00"


def test_recommendations_same_category_first(anna, t0):
    place_order(
        anna,
        t0,
        {"title": "Schort", "price": "25", "quantity": 5, "category": "Textiel"},
        {"title": "Bord", "price": "12", "quantity": 2, "category": "Keuken"},
        {"title": "Kom", "price": "10", "quantity": 1, "category": "keuken"},
    )

    rendered = render_email(message('{% product_recommendations source="same_category" count=3 %}'), dutch(), trigger=VIEWED)

    assert rendered.text == "- Bord (Keuken), € 12,00\n- Kom (keuken), € 10,00\n- Schort (Textiel), € 25,00"


def test_recommendations_latest_price_used(anna, t0):
    place_order(anna, t0 - timedelta(days=2), {"title": "Mok", "price": "8"})
    place_order(anna, t0, {"title": "Mok", "price": "9"})

    rendered = render_email(message("{% product_recommendations %}"), dutch(), trigger={})

    assert rendered.text == "- Mok, € 9,00"


def test_recommendations_ignore_old_orders(anna, t0, settings):
    settings.MKTAUTO_RECOMMENDATION_DAYS = 30
    place_order(anna, t0 - timedelta(days=400), {"title": "Oude mok", "price": "8"})

    rendered = render_email(message("{% product_recommendations %}"), english(), trigger={})

    assert rendered.text == "See everything we have in our shop."


def test_recommendations_without_orders_show_fallback(db):
    rendered = render_email(message('{% product_recommendations fallback="Bekijk de winkel." %}'), dutch(), trigger={})

    assert rendered.text == "Bekijk de winkel."


def test_recommendations_ranking_read_once(anna, t0, django_assert_num_queries):
    place_order(anna, t0, {"title": "Mok", "price": "8"})
    template = message("{% product_recommendations %}")
    render_email(template, dutch(), trigger={})

    with django_assert_num_queries(0):
        render_email(template, dutch(), trigger={})
        render_email(template, dutch("Bram"), trigger={})


# Fallback subject and missing values.


def test_fallback_subject_replaces_missing_name():
    template = message("Hoi", subject="{{ first_name }}, je mandje wacht", fallback_subject="Je mandje wacht op je")

    rendered = render_email(template, dutch(""))

    assert rendered.subject == "Je mandje wacht op je"


def test_subject_with_value_keeps_subject():
    template = message("Hoi", subject="{{ first_name }}, je mandje wacht", fallback_subject="Je mandje wacht op je")

    rendered = render_email(template, dutch("Anna"))

    assert rendered.subject == "Anna, je mandje wacht"


def test_subject_default_filter_needs_no_fallback():
    template = message("Hoi", subject='{{ first_name|default:"Hoi" }}, je mandje wacht', fallback_subject="Reserve")

    rendered = render_email(template, dutch(""))

    assert rendered.subject == "Hoi, je mandje wacht"


def test_empty_subject_uses_fallback():
    rendered = render_email(message("Hoi", subject="", fallback_subject="Nieuws"), dutch())

    assert rendered.subject == "Nieuws"


def test_missing_values_reported():
    rendered = render_email(message('Hoi {{ first_name }} uit {{ city|default:"Nederland" }} {{ trigger.code }}'), dutch(""))

    assert rendered.missing == ["first_name", "trigger.code"]


# Layout.


def test_layout_single_column_container():
    rendered = render_email(message("{% cart_items %}"), dutch(), trigger=CART)

    assert "max-width: 600px" in rendered.html
    assert "@media" not in rendered.html


def test_layout_tap_targets_at_least_44px():
    rendered = render_email(
        message("{% cart_items %}", cta_text="Afrekenen", cta_url="https://shop.example.com/cart"),
        dutch(),
        trigger=CART,
        unsubscribe_url="https://shop.example.com/u/x/",
        preferences_url="https://shop.example.com/u/x/preferences/",
    )

    anchors = re.findall(r"<a [^>]*>", rendered.html)
    assert len(anchors) == 4
    for anchor in anchors:
        assert "min-height: 44px" in anchor


def test_preferences_link_in_footer():
    rendered = render_email(
        message("Hoi"),
        english(),
        unsubscribe_url="https://shop.example.com/u/x/",
        preferences_url="https://shop.example.com/u/x/preferences/",
    )

    assert rendered.text.endswith(
        "--\nUnsubscribe: https://shop.example.com/u/x/\nChoose what you receive: https://shop.example.com/u/x/preferences/"
    )
    assert "https://shop.example.com/u/x/preferences/" not in rendered.links


def test_eleven_blocks_each_in_place():
    body = "\n\n".join(f'Blok {number}\n\n{{% viewed_product fallback="Leeg {number}" %}}' for number in range(11))

    rendered = render_email(message(body), dutch(), trigger={})

    for number in range(11):
        assert re.search(f'<p>Blok {number}</p>\n<p class="block block-fallback"[^>]*>Leeg {number}</p>', rendered.html)
