// Rhai highlighting for CodeMirror 6: a small stream tokenizer, enough to read scripts comfortably.
import { StreamLanguage } from "@codemirror/language";

const keywords = new Set([
  "let", "const", "fn", "if", "else", "switch", "do", "while", "until", "loop", "for", "in", "break",
  "continue", "return", "throw", "try", "catch", "import", "export", "as", "private", "this", "global",
  "is", "is_shared", "Fn", "call", "curry", "type_of", "print", "debug",
]);
const atoms = new Set(["true", "false"]);

function string(quote) {
  return (stream, state) => {
    let escaped = false, ch;
    while ((ch = stream.next()) != null) {
      if (ch === quote && !escaped) { state.tokenize = null; return "string"; }
      escaped = !escaped && ch === "\\";
    }
    return "string";
  };
}

function blockComment(stream, state) {
  while (!stream.eol()) {
    if (stream.match("*/")) { state.tokenize = null; break; }
    stream.next();
  }
  return "comment";
}

export const rhai = StreamLanguage.define({
  name: "rhai",
  startState: () => ({ tokenize: null }),
  token(stream, state) {
    if (state.tokenize) return state.tokenize(stream, state);
    if (stream.eatSpace()) return null;
    if (stream.match("//")) { stream.skipToEnd(); return "comment"; }
    if (stream.match("/*")) { state.tokenize = blockComment; return blockComment(stream, state); }
    const ch = stream.peek();
    if (ch === '"' || ch === "`") { stream.next(); state.tokenize = string(ch); return state.tokenize(stream, state); }
    if (ch === "'") { stream.match(/^'(\\.|[^'\\])'/) || stream.next(); return "string"; }
    if (stream.match(/^0x[0-9a-fA-F_]+|^0b[01_]+|^0o[0-7_]+|^\d[\d_]*(\.\d[\d_]*)?([eE][+-]?\d+)?/)) return "number";
    if (stream.match("#{")) return "bracket";
    if (stream.match(/^[A-Za-z_][A-Za-z0-9_]*/)) {
      const word = stream.current();
      if (stream.match("::", false)) return "namespace";
      if (keywords.has(word)) return "keyword";
      if (atoms.has(word)) return "atom";
      if (/^[A-Z][A-Z0-9_]+$/.test(word)) return "variableName.constant";
      if (stream.match(/^\s*\(/, false)) return "variableName.function";
      return "variableName";
    }
    if (stream.match("::")) return "punctuation";
    if (stream.match(/^[-+*\/%=<>!&|^?.]+/)) return "operator";
    stream.next();
    return null;
  },
  languageData: { commentTokens: { line: "//", block: { open: "/*", close: "*/" } } },
});
