// Colours are read from getComputedStyle and composited over the backgrounds of the element's
// ancestors, as the browser paints them. Text needs 4.5:1 (3:1 when large: 24 px, or 18.66 px
// bold); icons in controls and the edges of form fields need 3:1 (WCAG 1.4.3, 1.4.11).
// Disabled controls are exempt, as WCAG has them. An ancestor at opacity 0 is one that appears on
// hover or focus (copy buttons): it is checked as it looks when shown.
(rootSelector) => {
  const findings = [];
  const seen = new Set();

  function parse(css) {
    let m = /^#([0-9a-f]{6})$/i.exec(css);
    if (m) return [0, 2, 4].map((i) => parseInt(m[1].slice(i, i + 2), 16) / 255).concat(1);
    m = /^rgba?\(([^)]+)\)$/.exec(css);
    if (m) {
      const v = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
      return [v[0] / 255, v[1] / 255, v[2] / 255, v.length > 3 ? v[3] : 1];
    }
    m = /^color\(srgb ([^)]+)\)$/.exec(css);
    if (m) {
      const v = m[1].split(/[\s\/]+/).filter(Boolean).map(Number);
      return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
    }
    throw new Error(`cannot read the colour ${css}`);
  }
  const over = (top, bottom) => {
    const a = top[3] + bottom[3] * (1 - top[3]);
    if (a === 0) return [0, 0, 0, 0];
    return [0, 1, 2].map((i) => (top[i] * top[3] + bottom[i] * bottom[3] * (1 - top[3])) / a).concat(a);
  };
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v * 255).toString(16).padStart(2, "0")).join("");

  // What is painted behind an element: its own and its ancestors' backgrounds, composited.
  function backdrop(el) {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] >= 1) break;
    }
    let base = parse(getComputedStyle(document.documentElement).colorScheme.includes("dark")
      && matchMedia("(prefers-color-scheme: dark)").matches ? "#121212" : "#ffffff");
    for (let i = layers.length - 1; i >= 0; i--) base = over(layers[i], base);
    return base;
  }
  function opacity(el) {
    let value = 1;
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const own = Number(getComputedStyle(node).opacity);
      if (own > 0) value *= own;
    }
    return value;
  }
  function name(el) {
    const parts = [];
    for (let node = el; node && node.nodeType === 1 && parts.length < 3; node = node.parentElement) {
      parts.unshift(node.tagName.toLowerCase() + (node.classList.length ? "." + [...node.classList].join(".") : ""));
    }
    return parts.join(" > ");
  }
  function check(el, what, fg, bg, need, sample) {
    const shown = [...fg.slice(0, 3), fg[3] * opacity(el)];
    const painted = over(shown, bg);
    const value = ratio(painted, bg);
    const key = `${name(el)}|${what}|${hex(painted)}|${hex(bg)}`;
    if (value + 1e-6 < need && !seen.has(key)) {
      seen.add(key);
      findings.push(`${name(el)} ${what} ${JSON.stringify(sample.slice(0, 40))}: ${hex(painted)} on ${hex(bg)} is ${value.toFixed(2)}:1, needs ${need}:1`);
    }
  }
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility === "visible";
  const disabled = (el) => Boolean(el.closest(":disabled"));
  const large = (style) => {
    const size = parseFloat(style.fontSize);
    return size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  };

  const root = document.querySelector(rootSelector) || document.body;
  for (const el of [root, ...root.querySelectorAll("*")]) {
    if (!visible(el) || disabled(el) || el.closest("option, svg, .offscreen")) continue;
    const style = getComputedStyle(el);
    const texts = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim());
    if (texts.length) {
      check(el, "text", parse(style.color), backdrop(el), large(style) ? 3 : 4.5, texts[0].textContent.trim());
    }
    if (el.matches("input:not([type=checkbox]):not([type=hidden]), textarea, select")) {
      if (el.value) check(el, "value", parse(style.color), backdrop(el), 4.5, String(el.value));
      if (el.placeholder) {
        check(el, "placeholder", parse(getComputedStyle(el, "::placeholder").color), backdrop(el), 4.5, el.placeholder);
      }
      // The field's edge: its border, or that of the box it sits in (the composer).
      let box = el;
      while (box && parseFloat(getComputedStyle(box).borderTopWidth) === 0 && box !== root) box = box.parentElement;
      if (box) check(box, "field border", parse(getComputedStyle(box).borderTopColor), backdrop(box.parentElement), 3, el.getAttribute("aria-label") || el.name || "");
    }
    if (el.matches("svg.icon") && el.closest("button, a, summary")) {
      const stroke = style.stroke !== "none" ? style.stroke : style.fill;
      check(el, "icon", parse(stroke), backdrop(el.parentElement), 3, el.closest("button, a, summary").textContent.trim() || el.closest("button, a, summary").getAttribute("aria-label") || "");
    }
  }
  return findings;
}
