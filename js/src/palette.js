// Colours as packed RGBA words, the layout of an ImageData pixel on little-endian machines.

const HEX = /^#?([0-9a-fA-F]{6})([0-9a-fA-F]{2})?$/;

/** "#rrggbb" (or "#rrggbbaa") -> Uint32 as stored in a little-endian ImageData (0xAABBGGRR). */
export function packColor(hex) {
  const m = HEX.exec(String(hex));
  if (!m) throw new Error(`not a colour: ${hex}`);
  const rgb = parseInt(m[1], 16);
  const a = m[2] ? parseInt(m[2], 16) : 255;
  const r = (rgb >> 16) & 255;
  const g = (rgb >> 8) & 255;
  const b = rgb & 255;
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

/** The RGBA bytes of a packed colour, for comparing with canvas pixels. */
export function unpackColor(word) {
  return [word & 255, (word >>> 8) & 255, (word >>> 16) & 255, (word >>> 24) & 255];
}

/** A 256-entry lookup table from a list of hex colours; missing entries repeat `fallback`. */
export function buildPalette(colors, fallback = "#ff00ff") {
  const table = new Uint32Array(256).fill(packColor(fallback));
  const n = Math.min(colors.length, 256);
  for (let i = 0; i < n; i++) table[i] = packColor(colors[i]);
  return table;
}

// Viridis at 9 stops, interpolated to 256 entries (perceptually uniform, readable when printed grey).
const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];

/** A 256-entry ramp through `stops`: entry i is the colour of value i / 255. */
export function rampPalette(stops = VIRIDIS) {
  const rgb = stops.map((h) => {
    const w = packColor(h);
    return [w & 255, (w >>> 8) & 255, (w >>> 16) & 255];
  });
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (rgb.length - 1);
    const k = Math.min(Math.floor(x), rgb.length - 2);
    const f = x - k;
    const c = [0, 1, 2].map((j) => Math.round(rgb[k][j] * (1 - f) + rgb[k + 1][j] * f));
    table[i] = ((255 << 24) | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0;
  }
  return table;
}

