// The chat window's script (ui.page() puts it in the page's head): theme, copy, markers, and
// the document view. It acts on what render.py writes: #theme-switch, a[href^="#copy-"],
// a[href^="#src-"], a[href^="#doc-"].

// --- theme: the switch toggles Gradio's "dark" class and remembers the choice ---------------
const THEME_KEY = "assistant-theme";

function setTheme(dark, remember) {
  document.body.classList.toggle("dark", dark);
  const button = document.getElementById("theme-switch");
  if (button) {
    button.textContent = dark ? "☀ Light theme" : "☾ Dark theme";
    button.setAttribute("aria-pressed", dark ? "true" : "false");
  }
  if (remember) {
    try { localStorage.setItem(THEME_KEY, dark ? "dark" : "light"); } catch (e) { /* private */ }
  }
}

// On load: ?__theme= wins, then the remembered choice, then the system's (Gradio's default).
function applyStoredTheme() {
  let stored = null;
  try { stored = localStorage.getItem(THEME_KEY); } catch (e) { /* private mode */ }
  const asked = new URL(window.location.href).searchParams.get("__theme");
  const dark = asked ? asked === "dark"
    : stored ? stored === "dark" : document.body.classList.contains("dark");
  setTheme(dark, false);
}

// --- copy: "Copy" under an answer puts its text, rendered for the clipboard, there -----------
function copyAnswer(link) {
  const answer = link.closest(".answer");
  const source = answer && answer.querySelector(".copy-text");
  if (!source) return;
  const text = source.textContent;
  const done = function () {
    link.textContent = "Copied";
    setTimeout(function () { link.textContent = "Copy"; }, 1500);
  };
  const fallback = function () {  // plain http on another address has no clipboard API
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { if (document.execCommand("copy")) done(); } finally { area.remove(); }
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, fallback);
  } else {
    fallback();
  }
}

// --- markers: a click on [n] shows passage n in the sources panel, opening closed folds ------
function showPassage(link) {
  const card = document.getElementById(link.getAttribute("href").slice(1));
  if (!card) return false;
  for (let p = card.parentElement; p; p = p.parentElement) {
    if (p.tagName === "DETAILS") p.open = true;
  }
  document.querySelectorAll("#sources .src-card.flash").forEach(function (c) {
    c.classList.remove("flash");
  });
  card.classList.add("flash");
  card.scrollIntoView({behavior: "smooth", block: "nearest"});
  return true;
}

// --- "Show in document": ask the server for the whole document (through a hidden box), then
// scroll the view to the passage
function askForDocument(link) {
  const box = document.querySelector("#doc-request textarea, #doc-request input");
  if (!box) return;
  // A nonce after the "turn-n" key: asking for the same passage again is still an input.
  box.value = link.getAttribute("href").slice("#doc-".length) + "-" + Date.now();
  box.dispatchEvent(new Event("input", {bubbles: true}));
}

function showDocumentPassage() {
  setTimeout(function () {
    const passage = document.getElementById("doc-passage");
    if (passage) passage.scrollIntoView({block: "center"});
    const close = document.getElementById("doc-close");
    if (close) close.focus({preventScroll: true});
  }, 50);
}

document.addEventListener("keydown", function (event) {
  const view = document.getElementById("doc-view-box");
  if (event.key === "Escape" && view && view.getClientRects().length) {  // shown
    const close = document.getElementById("doc-close");
    if (close) close.click();
  }
});

document.addEventListener("click", function (event) {
  const target = event.target;
  if (!target.closest) return;
  const copy = target.closest('a[href^="#copy-"]');
  const marker = target.closest('a[href^="#src-"]');
  const showDoc = target.closest('a[href^="#doc-"]');
  if (copy) {
    copyAnswer(copy);
  } else if (showDoc) {
    askForDocument(showDoc);
  } else if (marker) {
    if (!showPassage(marker)) return;
  } else if (target.closest("#theme-switch")) {
    setTheme(!document.body.classList.contains("dark"), true);
    return;
  } else {
    return;
  }
  event.preventDefault();
  event.stopPropagation();
}, true);
