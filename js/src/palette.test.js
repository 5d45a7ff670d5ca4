import { describe, expect, it } from "vitest";
import { buildPalette, packColor, rampPalette, unpackColor } from "./palette.js";

describe("palette", () => {
  it("packs colours in ImageData byte order (R, G, B, A)", () => {
    const w = packColor("#3b82f6");
    expect(unpackColor(w)).toEqual([0x3b, 0x82, 0xf6, 255]);
    const bytes = new Uint8Array(new Uint32Array([w]).buffer);
    expect([...bytes]).toEqual([0x3b, 0x82, 0xf6, 255]);
    expect(unpackColor(packColor("#10203040"))).toEqual([0x10, 0x20, 0x30, 0x40]);
  });

  it("fills a 256-entry table and marks unknown indices loudly", () => {
    const lut = buildPalette(["#000000", "#ffffff"]);
    expect(lut.length).toBe(256);
    expect(unpackColor(lut[1])).toEqual([255, 255, 255, 255]);
    expect(unpackColor(lut[200])).toEqual([255, 0, 255, 255]);
    expect(() => packColor("blue")).toThrow(/not a colour/);
  });

  it("ramps from the first to the last stop", () => {
    const ramp = rampPalette(["#000000", "#ff0000"]);
    expect(unpackColor(ramp[0])).toEqual([0, 0, 0, 255]);
    expect(unpackColor(ramp[255])).toEqual([255, 0, 0, 255]);
    expect(unpackColor(ramp[128])[0]).toBe(128);
  });
});
