// Boxes at a given width: every visible element inside ``container`` lies inside it and inside the
// viewport (content of intended sideways scrollers, pre and tables, excepted), and an element that
// cuts its own content shows an ellipsis where it cuts (a flex or grid box never draws one).
([containerSelector, slack]) => {
  const findings = [];
  const width = document.documentElement.clientWidth;
  const scrollers = "pre, .table-wrap";
  const visible = (el) => {
    if (!el.getClientRects().length) return false;
    const style = getComputedStyle(el);
    return style.visibility === "visible" && Number(style.opacity) > 0;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.classList.length ? "." + [...el.classList].join(".") : "")
    + (el.dataset.tool ? `[data-tool=${el.dataset.tool}]` : "");
  for (const container of document.querySelectorAll(containerSelector)) {
    if (!visible(container)) continue;
    const outer = container.getBoundingClientRect();
    for (const el of [container, ...container.querySelectorAll("*")]) {
      if (!visible(el)) continue;
      const inScroller = el.parentElement && el.parentElement.closest(scrollers);
      const box = el.getBoundingClientRect();
      if (!inScroller && box.width > 0) {
        if (el !== container && (box.left < outer.left - slack || box.right > outer.right + slack)) {
          findings.push(`${name(el)} spans ${box.left.toFixed(1)}..${box.right.toFixed(1)} px, outside its ${name(container)} (${outer.left.toFixed(1)}..${outer.right.toFixed(1)})`);
        }
        if (box.left < -slack || box.right > width + slack) {
          findings.push(`${name(el)} spans ${box.left.toFixed(1)}..${box.right.toFixed(1)} px, outside the ${width} px viewport`);
        }
      }
      const style = getComputedStyle(el);
      if (!el.matches(scrollers) && ["hidden", "clip"].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
        const ellipsis = style.textOverflow === "ellipsis" && !/flex|grid/.test(style.display)
          && [...el.children].every((child) => getComputedStyle(child).display === "inline");
        if (!ellipsis) {
          findings.push(`${name(el)} cuts its content (${el.scrollWidth} px in ${el.clientWidth} px) without an ellipsis: ${JSON.stringify(el.textContent.trim().slice(0, 40))}`);
        }
      }
    }
  }
  return findings;
}
