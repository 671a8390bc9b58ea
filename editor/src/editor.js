// The console's script editor: CodeMirror 6 on the server page's textarea, Rhai highlighting,
// Ctrl/Cmd-S to save, and the compile error of a refused save marked at its line and column.
// Loaded only by the server page; the form still works without it (a plain textarea).
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
         drawSelection, Decoration } from "@codemirror/view";
import { EditorState, StateEffect, StateField } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching } from "@codemirror/language";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { rhai } from "./rhai.js";

const markError = StateEffect.define();
const errorLine = StateField.define({
  create: () => Decoration.none,
  update(marks, tr) {
    marks = marks.map(tr.changes);
    for (const effect of tr.effects) if (effect.is(markError)) {
      marks = effect.value == null ? Decoration.none
        : Decoration.set([Decoration.line({ class: "cm-error-line" }).range(effect.value)]);
    }
    return tr.docChanged ? Decoration.none : marks;
  },
  provide: (field) => EditorView.decorations.from(field),
});

function nonce() {
  const meta = document.querySelector('meta[name="csp-nonce"]');
  return meta ? meta.content : "";
}

function mount(textarea) {
  const form = textarea.form;
  const save = () => { textarea.value = view.state.doc.toString(); form.requestSubmit(); return true; };
  const view = new EditorView({
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        EditorView.cspNonce.of(nonce()),
        lineNumbers(), highlightActiveLineGutter(), highlightActiveLine(), drawSelection(), history(),
        indentOnInput(), bracketMatching(), closeBrackets(), highlightSelectionMatches(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }), rhai, errorLine,
        keymap.of([{ key: "Mod-s", run: save, preventDefault: true }, indentWithTab, ...closeBracketsKeymap,
                   ...defaultKeymap, ...historyKeymap, ...searchKeymap]),
        EditorView.contentAttributes.of({ "data-testid": "editor", "aria-label": "Script source" }),
      ],
    }),
  });
  textarea.hidden = true;
  textarea.removeAttribute("data-testid");
  textarea.after(view.dom);
  form.addEventListener("submit", () => { textarea.value = view.state.doc.toString(); });
  form.addEventListener("htmx:configRequest", () => { textarea.value = view.state.doc.toString(); });
  // After a refused save the answer holds the error with its position: mark that line, put the cursor there.
  document.body.addEventListener("htmx:afterSettle", () => {
    const error = document.querySelector('[data-testid="compile-error"][data-line]');
    if (!error) { view.dispatch({ effects: markError.of(null) }); return; }
    const number = Math.min(Math.max(parseInt(error.dataset.line, 10) || 1, 1), view.state.doc.lines);
    const line = view.state.doc.line(number);
    const column = Math.min(Math.max((parseInt(error.dataset.column, 10) || 1) - 1, 0), line.length);
    view.dispatch({ effects: markError.of(line.from), selection: { anchor: line.from + column },
                    scrollIntoView: true });
    view.focus();
  });
}

for (const textarea of document.querySelectorAll("textarea[data-editor]")) mount(textarea);
