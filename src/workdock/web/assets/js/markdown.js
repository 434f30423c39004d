// A small Markdown renderer that builds DOM nodes directly.
//
// Safety by construction: the source is never turned into HTML. Every piece of text becomes a
// text node; formatting only ever adds our own elements (p, strong, code, a, ...). Raw HTML in
// the source shows as the literal text it is. Links keep http(s) and mailto URLs only.
//
// Coverage is what chat answers use: fenced and indented code, headings, lists (nested,
// ordered, task boxes), block quotes, tables, rules, emphasis, code spans, links, autolinks.
// A fence that is still open (the answer is streaming) renders as a code block so far.

import { copyButton, h } from "./dom.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:\s+(.*)|\s*$)/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const SAFE_URL = /^(https?:\/\/|mailto:)/i;

export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  const lines = String(source).replace(/\r\n?/g, "\n").split("\n");
  for (const node of blocks(lines)) fragment.append(node);
  return fragment;
}

function blocks(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i += 1; continue; }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i += 1;
      while (i < lines.length && !new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(lines[i])) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or past the end while streaming)
      out.push(codeBlock(body.join("\n"), m[2]));
      continue;
    }
    if (/^( {4}|\t)/.test(line) && !ITEM.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || !lines[i].trim())) {
        body.push(lines[i].replace(/^( {4}|\t)/, ""));
        i += 1;
      }
      while (body.length && !body[body.length - 1].trim()) body.pop();
      out.push(codeBlock(body.join("\n"), ""));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      out.push(h(`h${m[1].length}`, {}, inline(m[2] || "")));
      i += 1;
      continue;
    }
    if (RULE.test(line)) { out.push(h("hr")); i += 1; continue; }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() && (m = QUOTE.exec(lines[i]) || [null, lines[i]])) {
        body.push(m[1]);
        i += 1;
      }
      out.push(h("blockquote", {}, blocks(body)));
      continue;
    }
    if (ITEM.test(line)) {
      const [node, next] = list(lines, i);
      out.push(node);
      i = next;
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      const [node, next] = table(lines, i);
      out.push(node);
      i = next;
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) {
      para.push(lines[i].trim());
      i += 1;
    }
    if (!para.length) { para.push(line.trim()); i += 1; }
    out.push(h("p", {}, inline(para.join("\n"))));
  }
  return out;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function list(lines, start) {
  const first = ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const node = ordered ? h("ol", { start: parseInt(first[2], 10) !== 1 ? parseInt(first[2], 10) : null }) : h("ul");
  let i = start;
  let loose = false;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const contentIndent = m[1].length + m[2].length + 1;
    const body = [m[3] || ""];
    i += 1;
    let blank = false;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) { blank = true; body.push(""); i += 1; continue; }
      const lead = line.match(/^ */)[0].length;
      const sibling = ITEM.exec(line);
      if (lead >= contentIndent || (sibling && lead > indent)) {
        body.push(line.slice(Math.min(lead, contentIndent)));
      } else if (!blank && !sibling && !startsBlock(line)) {
        body.push(line.trim()); // a lazy continuation of the item's paragraph
      } else {
        break;
      }
      blank = false;
      i += 1;
    }
    while (body.length && !body[body.length - 1].trim()) { body.pop(); loose = loose || blank; }
    const item = h("li");
    const task = /^\[([ xX])\]\s+/.exec(body[0]);
    if (task) {
      body[0] = body[0].slice(task[0].length);
      item.classList.add("task");
      item.append(h("input", { type: "checkbox", disabled: true, checked: task[1] !== " " }));
    }
    item.append(...blocks(body));
    node.append(item);
    if (i < lines.length && !lines[i].trim()) i += 1;
  }
  if (!loose) node.classList.add("tight");
  return [node, i];
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

function table(lines, start) {
  const head = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((cell) =>
    cell.startsWith(":") && cell.endsWith(":") ? "center" : cell.endsWith(":") ? "right" : null);
  const cell = (tag, text, index) => h(tag, { class: aligns[index] ? `align-${aligns[index]}` : null }, inline(text));
  const thead = h("thead", {}, h("tr", {}, head.map((text, index) => cell("th", text, index))));
  const tbody = h("tbody");
  let i = start + 2;
  while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
    const cells = splitRow(lines[i]);
    tbody.append(h("tr", {}, head.map((_, index) => cell("td", cells[index] || "", index))));
    i += 1;
  }
  return [h("div", { class: "table-wrap" }, h("table", {}, thead, tbody)), i];
}

export function codeBlock(code, language) {
  return h("div", { class: "code-block" },
    h("div", { class: "code-head" }, h("span", { class: "code-lang" }, language || "text"),
      copyButton(() => code)),
    h("pre", {}, h("code", {}, code)));
}

// ---- inline ------------------------------------------------------------------------------------

const PUNCT = /[!-/:-@[-`{-~]/;

function safeLink(url, children) {
  const href = url.trim();
  if (!SAFE_URL.test(href)) return [children, url ? ` (${url})` : ""].flat();
  return h("a", { href, target: "_blank", rel: "noopener noreferrer nofollow" }, children);
}

/** The matching close of a delimiter run, skipping code spans and escapes. */
function findClose(text, from, delim) {
  for (let j = from; j < text.length; j += 1) {
    const c = text[j];
    if (c === "\\") { j += 1; continue; }
    if (c === "`") {
      const run = text.slice(j).match(/^`+/)[0];
      const end = text.indexOf(run, j + run.length);
      if (end > 0) { j = end + run.length - 1; continue; }
    }
    if (text.startsWith(delim, j) && j > from && !/\s/.test(text[j - 1])) {
      if (delim.length === 1 && text[j + 1] === delim) { j += 1; continue; } // part of a longer run
      if (delim[0] === "_" && /\w/.test(text[j + delim.length] || "")) continue; // snake_case is not emphasis
      return j;
    }
  }
  return -1;
}

/** The `]` that closes the `[` at `from`, allowing nested brackets. */
function closeBracket(text, from) {
  let depth = 0;
  for (let j = from; j < text.length; j += 1) {
    if (text[j] === "\\") { j += 1; continue; }
    if (text[j] === "[") depth += 1;
    if (text[j] === "]" && (depth -= 1) === 0) return j;
  }
  return -1;
}

export function inline(text) {
  const out = [];
  let buffer = "";
  const flush = () => { if (buffer) { out.push(buffer); buffer = ""; } };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    let m;
    if (c === "\\" && i + 1 < text.length && PUNCT.test(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "\n") {
      flush();
      out.push(h("br"));
      i += 1;
      continue;
    }
    if (c === "`") {
      const run = rest.match(/^`+/)[0];
      const end = text.indexOf(run, i + run.length);
      if (end > 0 && text[end + run.length] !== "`") {
        flush();
        let code = text.slice(i + run.length, end).replace(/\n/g, " ");
        if (/^ .* $/.test(code)) code = code.slice(1, -1);
        out.push(h("code", {}, code));
        i = end + run.length;
        continue;
      }
      buffer += run;
      i += run.length;
      continue;
    }
    if (c === "*" || c === "_" || c === "~") {
      const delim = rest.startsWith(c + c) ? c + c : c === "~" ? null : c;
      const leftOk = c !== "_" || i === 0 || !/\w/.test(text[i - 1]);
      if (delim && leftOk && !/\s/.test(text[i + delim.length] || " ")) {
        const end = findClose(text, i + delim.length, delim);
        if (end > 0) {
          flush();
          const tag = c === "~" ? "del" : delim.length === 2 ? "strong" : "em";
          out.push(h(tag, {}, inline(text.slice(i + delim.length, end))));
          i = end + delim.length;
          continue;
        }
      }
    }
    if (c === "[" || (c === "!" && text[i + 1] === "[")) {
      const open = c === "!" ? i + 1 : i;
      const close = closeBracket(text, open);
      if (close > 0 && text[close + 1] === "(") {
        const target = /^\(\s*<?([^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)>?(?:\s+["'(].*?["')])?\s*\)/.exec(text.slice(close + 1));
        if (target) {
          flush();
          const label = text.slice(open + 1, close);
          // Images are shown as links: a chat answer must not make the browser fetch anything.
          out.push(safeLink(target[1], c === "!" ? [`🖼 ${label || "image"}`] : inline(label)));
          i = close + 1 + target[0].length;
          continue;
        }
      }
    }
    if (c === "<" && (m = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/i.exec(rest))) {
      flush();
      out.push(safeLink(m[1], [m[1]]));
      i += m[0].length;
      continue;
    }
    if ((c === "h" || c === "H") && (i === 0 || /[\s(*_~]/.test(text[i - 1])) &&
        (m = /^https?:\/\/[^\s<>]*[^\s<>.,:;"'!?)\]*_~]/i.exec(rest))) {
      flush();
      out.push(safeLink(m[0], [m[0]]));
      i += m[0].length;
      continue;
    }
    buffer += c;
    i += 1;
  }
  flush();
  return out;
}
