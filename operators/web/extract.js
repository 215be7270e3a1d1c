// Runs in the rendered page: text boxes, widgets, blocks in DOM order, images, and cleaned HTML/CSS.
// Coordinates are CSS pixels from the top-left of the document; the caller scales them to image pixels.
(opts) => {
  const MAX_TEXT = 300;
  const norm = (s) => (s || "").replace(/\s+/g, " ").trim();
  const shown = (el) => {
    const s = getComputedStyle(el);
    return s.display !== "none" && s.visibility !== "hidden" && parseFloat(s.opacity || "1") > 0;
  };
  const rect = (r) => ({x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height});

  // Text elements: elements with their own text nodes; the box is the range around their contents.
  const boxes = [];
  const TEXT_SEL = "h1,h2,h3,h4,h5,h6,p,li,td,th,a,button,label,span,figcaption,caption,dt,dd,blockquote,pre,code,div,option,legend,summary";
  for (const el of document.body ? document.body.querySelectorAll(TEXT_SEL) : []) {
    let own = "";
    for (const n of el.childNodes) if (n.nodeType === 3) own += n.textContent;
    if (!norm(own) || !shown(el)) continue;
    const rg = document.createRange();
    rg.selectNodeContents(el);
    const r = rg.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) continue;
    boxes.push({tag: el.tagName.toLowerCase(), text: norm(el.innerText || el.textContent).slice(0, MAX_TEXT), ...rect(r)});
  }

  // Widgets: things a user acts on, with the label a screen reader would read.
  const widgets = [];
  const WIDGET_SEL = "button,input:not([type=hidden]),select,textarea,a[href],[role=button],[role=link],[role=checkbox],[role=tab]";
  for (const el of document.body ? document.body.querySelectorAll(WIDGET_SEL) : []) {
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 4 || r.height < 4) continue;
    let label = el.getAttribute("aria-label") || "";
    if (!label && el.labels && el.labels.length) label = el.labels[0].innerText;
    if (!label) label = el.innerText || el.value || el.getAttribute("placeholder") || el.getAttribute("title") || el.getAttribute("alt") || "";
    const tag = el.tagName.toLowerCase();
    const type = tag === "input" ? (el.getAttribute("type") || "text") : (el.getAttribute("role") || tag);
    widgets.push({tag, type, label: norm(label).slice(0, MAX_TEXT), placeholder: el.getAttribute("placeholder") || "", ...rect(r)});
  }

  // Blocks in DOM order: text leaves and images, for the interleaved document.
  const blocks = [];
  const SKIP = new Set(["script", "style", "noscript", "template", "svg", "head", "iframe", "select", "textarea", "button"]);
  const BLOCK = new Set(["p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "figcaption", "caption", "td", "th", "dt", "dd", "label"]);
  const walk = (el) => {
    for (const c of el.children) {
      const tag = c.tagName.toLowerCase();
      if (SKIP.has(tag) || !shown(c)) continue;
      if (tag === "img") {
        const r = c.getBoundingClientRect();
        blocks.push({type: "image", src: c.currentSrc || c.src || "", alt: norm(c.getAttribute("alt")), alt_present: c.hasAttribute("alt"),
                     natural_w: c.naturalWidth, natural_h: c.naturalHeight, ...rect(r)});
        continue;
      }
      if ((BLOCK.has(tag) || c.children.length === 0) && !c.querySelector("img")) {
        const t = norm(c.innerText);
        if (t) blocks.push({type: "text", tag, text: t});
        continue;
      }
      walk(c);
    }
  };
  if (document.body) walk(document.body);

  // Cleaned HTML/CSS: no scripts, handlers, frames or tracking attributes; the page's CSS inlined.
  let css = "";
  for (const sh of document.styleSheets) {
    try { for (const r of sh.cssRules) css += r.cssText + "\n"; } catch (e) { /* cross-origin sheet */ }
  }
  const root = document.documentElement.cloneNode(true);
  root.querySelectorAll("script,noscript,iframe,object,embed,template,link,style,base,meta:not([charset]):not([name=viewport])").forEach((e) => e.remove());
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_COMMENT);
  const comments = [];
  while (walker.nextNode()) comments.push(walker.currentNode);
  comments.forEach((c) => c.remove());
  for (const e of root.querySelectorAll("*")) {
    for (const a of [...e.attributes]) {
      const n = a.name.toLowerCase();
      if (n.startsWith("on") || n.startsWith("data-") || ["nonce", "integrity", "crossorigin", "referrerpolicy", "ping", "srcset"].includes(n)) e.removeAttribute(a.name);
      else if ((n === "href" || n === "src" || n === "action") && /^\s*javascript:/i.test(a.value)) e.setAttribute(a.name, "#");
    }
  }
  let head = root.querySelector("head");
  if (!head) { head = document.createElement("head"); root.insertBefore(head, root.firstChild); }
  if (css.trim()) { const st = document.createElement("style"); st.textContent = "\n" + css; head.appendChild(st); }
  const html = "<!DOCTYPE html>\n" + root.outerHTML.replace(/\n\s*\n+/g, "\n");

  const de = document.documentElement;
  return {doc_w: de.scrollWidth, doc_h: Math.max(de.scrollHeight, document.body ? document.body.scrollHeight : 0),
          title: norm(document.title), lang: document.documentElement.lang || "", boxes, widgets, blocks, html,
          body_text: norm(document.body ? document.body.innerText : "").slice(0, 20000)};
}
