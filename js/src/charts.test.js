import { describe, expect, it } from "vitest";
import { REASON_TEXT, timeTicks, timeWindow } from "./axes.js";
import { COMPACT_REASONS, EVENT_CODE, EVENT_KIND, HEAT_MARK } from "./constants.js";
import * as heatmap from "./heatmap.js";
import * as pagemap from "./pagemap.js";
import * as trace from "./trace.js";

describe("the time charts", () => {
  it("share one window rule: the first window while the run is young, then the last window_s seconds", () => {
    expect(timeWindow(0, 30)).toEqual([0, 30]);
    expect(timeWindow(12.5, 30)).toEqual([0, 30]);
    expect(timeWindow(95, 30)).toEqual([65, 95]);
    expect(timeWindow(NaN, 30)).toEqual([0, 30]);
    expect(timeTicks(0, 30, 3).map((t) => t.label)).toEqual(["0 s", "10 s", "20 s", "30 s"]);
  });

  it("the trace's log axis only widens, in whole decades", () => {
    const data = (step) => ({ time: Float64Array.of(1, 2), step: Float32Array.from(step),
      alloc: Float32Array.of(NaN, NaN), pause: Float32Array.of(NaN, NaN) });
    expect(trace.widenDecades(trace.Y_START, data([2e-3, 3e-3]))).toEqual(trace.Y_START);
    const wide = trace.widenDecades(trace.Y_START, data([2e-8, 3]));
    expect(wide[0]).toBeCloseTo(1e-8, 20);
    expect(wide[1]).toBe(10);
    expect(trace.widenDecades(wide, data([2e-3, 3e-3]))).toEqual(wide);  // quieter data: the scale stays
    expect(trace.widenDecades(wide, null)).toEqual(wide);
  });

  it("crowded samples fall into pixel bins of min, median and max", () => {
    const ys = Float32Array.of(1, 5, 3, NaN, 2, 9);
    const time = Float64Array.of(0, 0.1, 0.2, 0.3, 10, 10.1);
    const bins = trace.binSamples(ys, time, 0, 6, (t) => t, 0);  // 1 px per second, 2 px bins
    expect(bins).toEqual([[0, 1, 3, 5], [5, 2, 9, 9]]);
  });

  it("markers name their trigger", () => {
    const code = (kind, reason) => kind | ((COMPACT_REASONS.indexOf(reason) + 1) << EVENT_CODE.REASON_SHIFT);
    expect(trace.eventText(code(EVENT_KIND.COMPACT, "free_ratio"))).toBe(`compaction: ${REASON_TEXT.free_ratio}`);
    expect(trace.eventText(EVENT_KIND.COMPACT)).toBe("compaction");
    expect(trace.eventText(EVENT_KIND.FAIL)).toBe("allocation failure");
    for (const reason of COMPACT_REASONS) expect(REASON_TEXT[reason]).toBeTruthy();
    const mark = HEAT_MARK.COMPACT | HEAT_MARK.FAIL | ((COMPACT_REASONS.indexOf("periodic") + 1) << HEAT_MARK.REASON_SHIFT);
    expect(heatmap.markText(mark)).toBe(`compaction: ${REASON_TEXT.periodic}\nallocation failure(s)`);
    expect(heatmap.markText(0)).toBe("");
  });

  it("a heatmap column holds until the next one; the newest ends at the right edge", () => {
    const times = [1, 2, 4, 6];
    expect([0, 1, 2, 3].map((c) => heatmap.columnSpan(times, c, 0.5))).toEqual([[1, 2], [2, 4], [4, 6], [5.5, 6]]);
    expect(heatmap.columnAt(times, 0.5, 0.5)).toBe(-1);
    expect(heatmap.columnAt(times, 1, 0.5)).toBe(0);
    expect(heatmap.columnAt(times, 3, 0.5)).toBe(1);
    expect(heatmap.columnAt(times, 5, 0.5)).toBe(2);
    expect(heatmap.columnAt(times, 5.7, 0.5)).toBe(3);  // the newest column, drawn over the one before
    expect(heatmap.columnAt(times, 7, 0.5)).toBe(-1);
  });

  it("view modules export only `default { render }` (a named render export makes anywidget warn)", () => {
    for (const mod of [heatmap, pagemap, trace]) {
      expect(mod.render).toBeUndefined();
      expect(typeof mod.default.render).toBe("function");
    }
  });
});
