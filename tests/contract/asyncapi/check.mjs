// Parse an AsyncAPI document with the AsyncAPI project's own parser; print its diagnostics
// as JSON lines ({severity, code, message, path}); exit 1 if any is an error or a warning.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"));
let bad = 0;
for (const d of diagnostics) {
  // 0 error, 1 warning, 2 information, 3 hint (Spectral's DiagnosticSeverity)
  if (d.severity <= 1) bad += 1;
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
if (document === undefined) bad += 1;
console.log(JSON.stringify({ parsed: document !== undefined, problems: bad }));
process.exit(bad === 0 ? 0 : 1);
