"""TwinDeck: the control room's deck.gl map as a Dash component (see src/index.js).

Rebuild the bundle after changing src/index.js: ``cd dashboard/deck && npm ci && npm run build``
(esbuild; the built twin_deck.min.js is committed, so running the app needs no Node).
"""

from __future__ import annotations

from typing import Any

from dash.development.base_component import Component


class TwinDeck(Component):
    """A deck.gl map: static layers sent once, live data and colours patched key by key.

    Keyword arguments:
    - id: the component's id.
    - layers: pydeck-style JSON layer specs (``json.loads(layer.to_json())``).
    - layerData: {layer id: {key: record}}; a layer listed here draws these records.
    - featureColors: {layer id: {feature id: [r, g, b, a]}}; overrides of getFillColor.
    - colorBy: {layer id: {field, colors: {value: rgba}, default, accessor}}: colour by a
      record's field (accessor: getFillColor by default, getColor for paths).
    - pulse: ids of scatterplot layers whose points pulse.
    - tooltips: {layer id: HTML template with {field} placeholders}.
    - initialViewState: the camera at mount. viewState: fly the camera there.
    - tileUrl: an online raster tile URL template, only when configured.
    - clickInfo (read): {layer, object, coordinate, n} of the last click.
    - hoverInfo (read, with hoverEvents): {layer, object} under the pointer.
    """

    _namespace = "dashboard"
    _type = "TwinDeck"
    _children_props: list[str] = []
    _base_nodes = ["children"]
    _prop_names = ["id", "layers", "layerData", "featureColors", "colorBy", "pulse", "tooltips",
                   "initialViewState", "viewState", "tileUrl", "hoverEvents", "clickInfo",
                   "hoverInfo", "style", "className"]
    _valid_wildcard_attributes: list[str] = []
    available_properties = _prop_names
    available_wildcard_properties: list[str] = []

    def __init__(self, id: str | dict | None = None, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(self._prop_names)
        if unknown:
            raise TypeError(f"TwinDeck has no properties {sorted(unknown)}")
        if id is not None:
            kwargs["id"] = id
        super().__init__(**kwargs)
