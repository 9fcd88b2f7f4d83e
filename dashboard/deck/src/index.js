// TwinDeck: the control room's deck.gl map as a Dash component.
//
// Props (see dashboard/deck/__init__.py for the Python side):
//   layers           pydeck-style JSON layer specs ("@@type", "@@=" accessors); sent once
//   layerData        {layerId: {key: record}}: live data of a layer, patched key by key
//   featureColors    {layerId: {featureId: [r,g,b,a]}}: colour overrides, patched key by key
//   colorBy          {layerId: {field, colors: {value: rgba}, default, accessor}}: colour
//                    by a record's field, so live records need not carry their colour
//   pulse            [layerId]: scatterplot layers whose radius pulses (incidents)
//   tooltips         {layerId: "html with {field} placeholders"}
//   initialViewState the camera at mount; viewState moves the camera later (flies there)
//   clickInfo        written on click: {layer, object, coordinate, n}
//   hoverInfo        written when the hovered object changes (only with hoverEvents)
// React comes from Dash's page (window.React); deck.gl is bundled here, served locally.
import {Deck, MapView, FlyToInterpolator} from '@deck.gl/core';
import {
  PolygonLayer, SolidPolygonLayer, PathLayer, ScatterplotLayer, TextLayer, BitmapLayer,
  LineLayer, ColumnLayer, IconLayer, GeoJsonLayer,
} from '@deck.gl/layers';
import {TileLayer} from '@deck.gl/geo-layers';
import {JSONConverter, JSONConfiguration} from '@deck.gl/json';

const React = window.React;
const {useEffect, useRef, useMemo} = React;

const converter = new JSONConverter({
  configuration: new JSONConfiguration({
    classes: {
      PolygonLayer, SolidPolygonLayer, PathLayer, ScatterplotLayer, TextLayer, BitmapLayer,
      LineLayer, ColumnLayer, IconLayer, GeoJsonLayer, TileLayer, MapView,
    },
  }),
});

const HEAVY_KEYS = new Set(['polygon', 'path', 'contour']);

function lightObject(object) {
  if (!object || typeof object !== 'object') return object;
  const out = {};
  for (const [k, v] of Object.entries(object)) {
    if (!HEAVY_KEYS.has(k)) out[k] = v;
  }
  return out;
}

function fillTemplate(template, object) {
  return template.replace(/\{([a-zA-Z0-9_]+)\}/g, (_, key) => {
    const v = object[key];
    if (v === undefined || v === null) return '';
    return String(v).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
  });
}

function tileLayer(url) {
  // An online raster basemap, only when the configuration names one.
  return new TileLayer({
    id: '__tiles', data: url, minZoom: 0, maxZoom: 19, tileSize: 256,
    renderSubLayers: props => {
      const {boundingBox} = props.tile;
      return new BitmapLayer(props, {
        data: null, image: props.data,
        bounds: [boundingBox[0][0], boundingBox[0][1], boundingBox[1][0], boundingBox[1][1]],
      });
    },
  });
}

function TwinDeck(props) {
  const {
    id, layers, layerData, featureColors, colorBy, pulse, tooltips, initialViewState, viewState,
    tileUrl, hoverEvents, setProps, style, className,
  } = props;
  const container = useRef(null);
  const deckRef = useRef(null);
  const clicks = useRef(0);
  const hovered = useRef(null);
  const frames = useRef(0);
  const colorVersion = useRef({});
  const lastColors = useRef({});
  const live = useRef({});

  // Static layers: converted from JSON once per change of the `layers` prop.
  const baseLayers = useMemo(() => {
    const specs = layers || [];
    return specs.map(spec => converter.convert(spec)).filter(Boolean);
  }, [layers]);

  function compose(now) {
    const colors = featureColorsRef.current || {};
    const data = layerDataRef.current || {};
    const pulsing = new Set(pulseRef.current || []);
    const byField = colorByRef.current || {};
    const out = [];
    if (tileUrlRef.current) out.push(tileLayer(tileUrlRef.current));
    for (const layer of baseLayers) {
      const lid = layer.id;
      const extra = {};
      if (data[lid] !== undefined) {
        extra.data = Object.values(data[lid] || {});
      }
      if (colors[lid] !== undefined) {
        if (lastColors.current[lid] !== colors[lid]) {
          lastColors.current[lid] = colors[lid];
          colorVersion.current[lid] = (colorVersion.current[lid] || 0) + 1;
        }
        const overrides = colors[lid] || {};
        const base = layer.props.getFillColor;
        extra.getFillColor = (d, info) => {
          const c = overrides[d.id];
          if (c) return c;
          return typeof base === 'function' ? base(d, info) : base;
        };
        extra.updateTriggers = {...(layer.props.updateTriggers || {}),
          getFillColor: colorVersion.current[lid]};
      }
      if (byField[lid]) {
        const {field, colors: palette, default: fallback, accessor} = byField[lid];
        const name = accessor || 'getFillColor';
        extra[name] = d => (palette && palette[d[field]]) || fallback || [200, 200, 200, 255];
        extra.updateTriggers = {...(extra.updateTriggers || layer.props.updateTriggers || {}),
          [name]: JSON.stringify(byField[lid])};
      }
      if (pulsing.has(lid)) {
        const phase = (now % 1400) / 1400;
        extra.radiusScale = 1 + 1.5 * phase;
        extra.opacity = Math.max(0.05, 1 - phase);
      }
      out.push(Object.keys(extra).length ? layer.clone(extra) : layer);
    }
    return out;
  }

  // Props read by deck callbacks and the animation loop without re-creating the Deck.
  const featureColorsRef = useRef(featureColors);
  const layerDataRef = useRef(layerData);
  const pulseRef = useRef(pulse);
  const colorByRef = useRef(colorBy);
  colorByRef.current = colorBy;
  const tooltipsRef = useRef(tooltips);
  const tileUrlRef = useRef(tileUrl);
  const setPropsRef = useRef(setProps);
  featureColorsRef.current = featureColors;
  layerDataRef.current = layerData;
  pulseRef.current = pulse;
  tooltipsRef.current = tooltips;
  tileUrlRef.current = tileUrl;
  setPropsRef.current = setProps;
  live.current.compose = compose;

  useEffect(() => {
    const deck = new Deck({
      parent: container.current,
      width: '100%',
      height: '100%',
      initialViewState: initialViewState || {longitude: 0, latitude: 0, zoom: 1},
      controller: true,
      useDevicePixels: true,
      layers: [],
      getCursor: ({isHovering}) => (isHovering ? 'pointer' : 'grab'),
      getTooltip: info => {
        const {object, layer} = info;
        const templates = tooltipsRef.current || {};
        if (!object || !layer || !templates[layer.id]) return null;
        return {
          html: fillTemplate(templates[layer.id], object),
          className: 'twin-deck-tooltip',
          style: {backgroundColor: 'rgba(8, 18, 32, 0.92)', color: '#dfe9f5',
            border: '1px solid #2c5a8a', borderRadius: '4px', fontSize: '13px',
            padding: '6px 9px', maxWidth: '320px'},
        };
      },
      onHover: info => {
        if (!hoverEventsRef.current || !setPropsRef.current) return;
        const key = info.object ? `${info.layer.id}:${info.object.id}` : null;
        if (key === hovered.current) return;
        hovered.current = key;
        setPropsRef.current({hoverInfo: info.object
          ? {layer: info.layer.id, object: lightObject(info.object)} : null});
      },
      onAfterRender: () => {
        frames.current += 1;
        if (container.current && (frames.current < 5 || frames.current % 30 === 0)) {
          container.current.dataset.frames = String(frames.current);
        }
      },
    });
    deckRef.current = deck;
    // Clicks are picked here rather than through deck's gesture recogniser, so a click is
    // a click however the pointer events arrive (touch walls, kiosks, test browsers).
    const el = container.current;
    let down = null;
    const onDown = e => { down = {x: e.clientX, y: e.clientY, t: performance.now()}; };
    const onUp = e => {
      if (!down || !setPropsRef.current) return;
      const moved = Math.hypot(e.clientX - down.x, e.clientY - down.y);
      const held = performance.now() - down.t;
      down = null;
      if (moved > 6 || held > 800) return;  // a drag or a long press moves the camera
      const rect = el.getBoundingClientRect();
      const info = deck.pickObject({x: e.clientX - rect.left, y: e.clientY - rect.top, radius: 3});
      if (!info || !info.object || !info.layer) return;
      clicks.current += 1;
      setPropsRef.current({clickInfo: {
        layer: info.layer.id, object: lightObject(info.object),
        coordinate: info.coordinate, n: clicks.current,
      }});
    };
    el.addEventListener('pointerdown', onDown);
    el.addEventListener('pointerup', onUp);
    if (typeof window !== 'undefined') {
      window.__twinDecks = window.__twinDecks || {};
      window.__twinDecks[id || 'deck'] = deck;
    }
    let raf = 0;
    let last = 0;
    const tick = now => {
      raf = window.requestAnimationFrame(tick);
      if ((pulseRef.current || []).length && now - last > 60) {
        last = now;
        deck.setProps({layers: live.current.compose(now)});
      }
    };
    raf = window.requestAnimationFrame(tick);
    return () => {
      window.cancelAnimationFrame(raf);
      el.removeEventListener('pointerdown', onDown);
      el.removeEventListener('pointerup', onUp);
      deck.finalize();
      deckRef.current = null;
    };
  }, []);

  const hoverEventsRef = useRef(hoverEvents);
  hoverEventsRef.current = hoverEvents;

  // Any prop change: recompose the layers (data and colours only; the camera stays).
  useEffect(() => {
    if (deckRef.current) deckRef.current.setProps({layers: compose(performance.now())});
  }, [baseLayers, layerData, featureColors, colorBy, pulse, tileUrl]);

  useEffect(() => {
    if (deckRef.current && viewState) {
      deckRef.current.setProps({initialViewState: {
        ...viewState, transitionDuration: 900, transitionInterpolator: new FlyToInterpolator(),
      }});
    }
  }, [viewState]);

  return React.createElement('div', {
    id, ref: container, className: `twin-deck ${className || ''}`,
    style: {position: 'relative', width: '100%', height: '100%', overflow: 'hidden', ...(style || {})},
  });
}

TwinDeck.defaultProps = {
  layers: [], layerData: {}, featureColors: {}, colorBy: {}, pulse: [], tooltips: {},
  hoverEvents: false,
};

window.dashboard = Object.assign(window.dashboard || {}, {TwinDeck});
