// Parses PromQL expressions with Prometheus's own grammar (the web UI's
// @prometheus-io/lezer-promql, pinned in package.json) for scripts/promql-grammar.py.
// stdin: a JSON array of expressions. stdout: a JSON array, for each expression
// the [from, to] offsets (UTF-16 code units) of every error node the parser left.
import { readFileSync } from "node:fs";
import { parser } from "@prometheus-io/lezer-promql";

const expressions = JSON.parse(readFileSync(0, "utf8"));
const errors = expressions.map((expression) => {
  const found = [];
  parser.parse(expression).iterate({
    enter(node) {
      if (node.type.isError) found.push([node.from, node.to]);
    },
  });
  return found;
});
process.stdout.write(JSON.stringify(errors));
