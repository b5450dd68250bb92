"""The base of the admin's schema-driven JSON editors (django-jsonform) for conditions and metric targets.

Both editors build their schema when they render, from the value being rendered, so that values
already stored stay selectable even when the current choices no longer list them.
"""

import json
from typing import Any

from django_jsonform.widgets import JSONFormWidget


class RenderTimeSchemaWidget(JSONFormWidget):
    """A django-jsonform widget whose subclass builds the schema in ``build_schema`` at render time."""

    def __init__(self, attrs: dict | None = None) -> None:
        # get_schema builds the schema, so none is stored here.
        super().__init__(schema={}, attrs=attrs)
        self.rendered_data: Any = None

    def build_schema(self) -> dict:
        raise NotImplementedError

    def get_schema(self) -> dict:
        # A method rather than a schema callable: each form renders a shallow copy of its widget,
        # and a bound callable would keep reading the widget it was made on.
        return self.build_schema()

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        # The editor's script always submits at least an empty value. An empty or missing value
        # means the script did not run, so the stored value is kept instead of being wiped.
        return not (data.get(name) or "").strip()

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer: Any = None) -> str:
        try:
            self.rendered_data = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            self.rendered_data = None
        return super().render(name, value, attrs, renderer)
