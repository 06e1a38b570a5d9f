// Measurements the browser tests of the status page run inside the page (injected by
// tests/test_status_browser.py through the DevTools protocol; the page itself has no
// script). Each returns plain JSON.
window.statusChecks = {
  // Horizontal overflow, and whether each window's name, bar and percentage stay in
  // its own block, stacked in that order.
  layout() {
    const box = (el) => el.getBoundingClientRect();
    const inside = (r, outer) =>
      r.left >= outer.left - 0.5 && r.right <= outer.right + 0.5 &&
      r.top >= outer.top - 0.5 && r.bottom <= outer.bottom + 0.5;
    const problems = [];
    const blocks = [...document.querySelectorAll("li.window")];
    for (const block of blocks) {
      const outer = box(block);
      const name = block.querySelector(".window-name");
      const bar = block.querySelector("meter, .no-meter");
      const pct = block.querySelector(".pct");
      const what = name ? name.textContent : block.textContent.slice(0, 30);
      if (!name || !bar || !pct) {
        problems.push(`${what}: no name, bar or percentage in its block`);
        continue;
      }
      for (const [label, el] of [["name", name], ["bar", bar], ["percentage", pct]]) {
        if (!inside(box(el), outer)) problems.push(`${what}: its ${label} leaves its block`);
      }
      if (box(name).bottom > box(bar).top + 0.5) problems.push(`${what}: name not above bar`);
      if (box(bar).bottom > box(pct).top + 0.5) problems.push(`${what}: bar not above number`);
    }
    for (const card of document.querySelectorAll("section.org")) {
      if (!inside(box(card.querySelector("h2")), box(card))) {
        problems.push(`org ${card.querySelector("h2").textContent}: name leaves its card`);
      }
    }
    for (const el of document.body.querySelectorAll("*")) {
      const r = box(el);
      if (r.width > 0 && (r.left < -0.5 || r.right > innerWidth + 0.5)) {
        const tag = `<${el.tagName.toLowerCase()} class="${el.className}">`;
        problems.push(`${tag} spans ${r.left.toFixed(1)}..${r.right.toFixed(1)} px`);
      }
    }
    return {
      innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      blocks: blocks.length,
      problems: problems.slice(0, 20),
    };
  },

  // The WCAG contrast ratio of every visible text node against the opaque background
  // behind it (backgrounds are flat colours on this page), with the ratio AA needs.
  contrast() {
    const parse = (css) => {
      const m = css.match(/^rgba?\(([^)]*)\)$/);
      if (!m) throw new Error(`unexpected colour ${css}`);
      const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
    };
    const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3]));
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c[3] > 0) layers.push(c);
        if (c[3] >= 1) break;
      }
      // Under everything, the canvas: white in light mode, as the page never shows it.
      return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255]);
    };
    const luminance = (rgb) => {
      const [r, g, b] = rgb.map((v) => {
        const c = v / 255;
        return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const ratio = (a, b) => {
      const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
      return (hi + 0.05) / (lo + 0.05);
    };
    const texts = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const el = node.parentElement;
      const style = getComputedStyle(el);
      if (!node.textContent.trim() || el.getClientRects().length === 0) continue;
      if (style.visibility !== "visible") continue;
      const bg = background(el);
      const fg = over(parse(style.color), bg);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      texts.push({
        text: node.textContent.trim().slice(0, 40),
        ratio: Math.round(ratio(fg, bg) * 100) / 100,
        needed: large ? 3 : 4.5,
        color: style.color,
      });
    }
    return {
      pageLuminance: luminance(background(document.body)),
      texts,
    };
  },
};
