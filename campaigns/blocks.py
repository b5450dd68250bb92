"""Dynamic blocks in a message body: {% cart_items %}, {% order_items %}, {% viewed_product %}, {% product_recommendations %}.

Each block is a template tag of the merge engine. It reads the trigger data (the cart, order or
product that enrolled the contact) and renders a list of products: HTML for the email, plain lines
for the text part. Every block takes ``fallback="..."``, the text shown when its data is missing.
Without one, a short default sentence in the contact's language is shown; ``fallback=""`` shows nothing.

In the HTML version the tag leaves a placeholder that markdown passes through untouched, and the
block's HTML replaces it after markdown ran; so markdown never rewrites the block's markup, and the
product data in it is escaped by Django's template engine like any template variable.
"""

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.template import Context, Node, TemplateSyntaxError
from django.template.base import FilterExpression, Parser, Token
from django.template.defaulttags import token_kwargs
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext, ngettext

from campaigns import recommendations
from campaigns.escaping import markdown_escape
from campaigns.products import ProductLine, format_price, line_items, read_amount, viewed_product

logger = logging.getLogger(__name__)

MAX_LINES = 10
BLOCK_OPTIONS = {
    "cart_items": {"fallback"},
    "order_items": {"fallback"},
    "viewed_product": {"fallback"},
    "product_recommendations": {"fallback", "source", "count"},
}
RECOMMENDATION_SOURCES = ("bestsellers", "same_category")


@dataclass
class RenderState:
    """Block settings beyond the merge data: the language and currency, and in HTML mode the slots the blocks fill."""

    language: str
    currency: str
    html_blocks: list[str] | None = None
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    def placeholder(self, index: int) -> str:
        # Letters and digits only, so markdown leaves it as one word of text. The closing "z" keeps
        # the placeholder of block 1 from matching the start of block 10's.
        return f"mktautoblock{self.nonce}x{index}z"

    def add(self, html: str) -> str:
        assert self.html_blocks is not None
        self.html_blocks.append(html)
        return f"\n\n{self.placeholder(len(self.html_blocks) - 1)}\n\n"

    def fill(self, page: str) -> str:
        """Replace each placeholder, with the paragraph markdown wrapped it in, by the block's HTML."""
        for index, html in enumerate(self.html_blocks or []):
            placeholder = self.placeholder(index)
            page = page.replace(f"<p>{placeholder}</p>", html).replace(placeholder, html)
        return page


@dataclass
class BlockContent:
    lines: list[ProductLine]
    fallback: str
    total: str = ""
    show_quantity: bool = True


class BlockNode(Node):
    def __init__(self, name: str, options: dict[str, FilterExpression]) -> None:
        self.name = name
        self.options = options

    def __repr__(self) -> str:
        return f"<BlockNode {self.name}>"

    def render(self, context: Context) -> str:
        options = {name: expression.resolve(context) for name, expression in self.options.items()}
        trigger = context.get("trigger") or {}
        if not isinstance(trigger, dict):
            trigger = {}
        state: RenderState | None = getattr(context, "mktauto_render", None)
        if state is None:
            state = RenderState(language=settings.LANGUAGE_CODE, currency=settings.MKTAUTO_DEFAULT_CURRENCY)
        currency = str(trigger.get("currency") or state.currency)

        with translation.override(state.language):
            content = block_content(self.name, trigger, options)
            if context.autoescape and state.html_blocks is not None:
                return state.add(block_html(content, currency, state.language))
            text = block_text(content, currency, state.language)
        # In the HTML version without slots (a caller rendering one field), the text is escaped like a merge value.
        if context.autoescape:
            return markdown_escape(text)
        # Blank lines around the block keep it apart from a sentence it was written into; render_email
        # folds runs of blank lines into one.
        return f"\n\n{text}\n\n" if text else ""


def compile_block(parser: Parser, token: Token) -> BlockNode:
    bits = token.split_contents()
    name = bits[0]
    options = token_kwargs(bits[1:], parser, support_legacy=False)
    if len(options) != len(bits) - 1:
        raise TemplateSyntaxError(f'{name} takes only name=value options, e.g. {name} fallback="..."; got {token.contents!r}')
    unknown = set(options) - BLOCK_OPTIONS[name]
    if unknown:
        raise TemplateSyntaxError(
            f"{name} has no option {', '.join(sorted(unknown))}; it takes {', '.join(sorted(BLOCK_OPTIONS[name]))}"
        )
    return BlockNode(name, options)


def option_text(options: dict[str, Any], name: str, default: str) -> str:
    if name not in options:
        return default
    value = options[name]
    return "" if value is None else " ".join(str(value).split())


def recommendation_count(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 3


def block_content(name: str, trigger: dict[str, Any], options: dict[str, Any]) -> BlockContent:
    """Collect the products a block shows and its fallback text, in the active language."""
    if name == "cart_items":
        return BlockContent(
            lines=line_items(trigger), fallback=option_text(options, "fallback", gettext("Your cart is saved for you."))
        )

    if name == "order_items":
        lines = line_items(trigger)
        total = trigger.get("total_price") if lines else None
        return BlockContent(
            lines=lines,
            fallback=option_text(options, "fallback", gettext("You can find your order in your account.")),
            total=str(total) if total not in (None, "") else "",
        )

    if name == "viewed_product":
        product = viewed_product(trigger)
        return BlockContent(
            lines=[product] if product else [],
            fallback=option_text(options, "fallback", gettext("Take another look in our shop.")),
            show_quantity=False,
        )

    source = option_text(options, "source", "bestsellers")
    if source not in RECOMMENDATION_SOURCES:
        logger.warning("product_recommendations source %r is unknown; bestsellers are shown", source)
    cart = line_items(trigger)
    product = viewed_product(trigger)
    trigger_products = [*cart, product] if product else cart
    category = ""
    if source == "same_category":
        category = next((line.category for line in trigger_products if line.category), "")
    lines = recommendations.recommend(
        count=recommendation_count(options.get("count", 3)),
        category=category,
        exclude={line.key for line in trigger_products},
    )
    return BlockContent(
        lines=lines,
        fallback=option_text(options, "fallback", gettext("See everything we have in our shop.")),
        show_quantity=False,
    )


def price_text(line: ProductLine, currency: str, language: str, show_quantity: bool) -> str:
    if line.unit_price is None:
        return ""
    if show_quantity and line.quantity and line.quantity > 1 and line.line_price is not None:
        return f"{line.quantity} × {format_price(line.unit_price, currency, language)} = {format_price(line.line_price, currency, language)}"
    if show_quantity and line.quantity:
        return f"{line.quantity} × {format_price(line.unit_price, currency, language)}"
    return format_price(line.unit_price, currency, language)


def total_text(content: BlockContent, currency: str, language: str) -> str:
    amount = read_amount(content.total)
    if amount is None:
        return ""
    return gettext("Total: %(amount)s") % {"amount": format_price(amount, currency, language)}


def shown_lines(content: BlockContent) -> tuple[list[ProductLine], int]:
    return content.lines[:MAX_LINES], max(0, len(content.lines) - MAX_LINES)


def block_html(content: BlockContent, currency: str, language: str) -> str:
    if not content.lines:
        if not content.fallback:
            return ""
        return render_to_string("email/blocks/fallback.html", {"text": content.fallback})
    lines, hidden = shown_lines(content)
    rows = [
        {
            "title": line.title,
            "detail": line.detail,
            "price": price_text(line, currency, language, content.show_quantity),
            "image_url": line.image_url,
            "url": line.url,
        }
        for line in lines
    ]
    return render_to_string(
        "email/blocks/products.html",
        {"rows": rows, "hidden": hidden, "total": total_text(content, currency, language)},
    )


def block_text(content: BlockContent, currency: str, language: str) -> str:
    if not content.lines:
        return content.fallback
    lines, hidden = shown_lines(content)
    output = []
    for line in lines:
        parts = [line.title + (f" ({line.detail})" if line.detail else "")]
        price = price_text(line, currency, language, content.show_quantity)
        if price:
            parts.append(price)
        output.append("- " + ", ".join(parts))
        if line.url:
            output.append(f"  {line.url}")
    if hidden:
        output.append(ngettext("and %(counter)s more", "and %(counter)s more", hidden) % {"counter": hidden})
    total = total_text(content, currency, language)
    if total:
        output.append(total)
    return "\n".join(output)
