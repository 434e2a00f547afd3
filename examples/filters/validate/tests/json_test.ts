// Unit test of the JSON validator, in AssemblyScript: run_cases() returns the
// number of failures and writes each to stderr. tests/validate.test.mjs runs
// it under node.
import { logError } from "@samsa/filter-as";
import { validateBytes } from "../assembly/json";

function check(input: string, valid: bool): i32 {
  const err = validateBytes(Uint8Array.wrap(String.UTF8.encode(input)));
  if ((err == null) == valid) return 0;
  logError("case " + JSON_quote(input) + ": want " + (valid ? "valid" : "invalid") + ", got " + (err == null ? "valid" : err!));
  return 1;
}

function JSON_quote(s: string): string {
  return "<" + s + ">";
}

export function run_cases(): i32 {
  let f = 0;
  const good = [
    "0", "-0", "1.5", "-12.5e+3", "1E-2", "123456789012345678901234567890", "true", "false", "null",
    '""', '"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00"', '"é 😀"',
    "{}", "[]", " { } ", '{"a":1}', '{"a":[1,2,{"b":null}],"c":{"d":"e"}}', "[[[[[[]]]]]]",
    ' \t\r\n[ 1 , "x" , true ] \n', '{"":0}',
  ];
  const bad = [
    "", " ", "{", "}", "[", "]", "[1,]", "[,1]", '{"a":1,}', '{"a" 1}', '{a:1}', "{'a':1}", '{"a":1 "b":2}',
    "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "NaN", "Infinity", "tru", "nul", "True",
    '"abc', '"a\\x"', '"\\u12"', '"a\tb"', "[1] [2]", "1 2", "[1}", '{"a":1]', "plain text", "{}x",
  ];
  for (let i = 0; i < good.length; i++) f += check(good[i], true);
  for (let i = 0; i < bad.length; i++) f += check(bad[i], false);
  if (validateBytes(null) == null) { logError("null value: want invalid"); f++; }
  // deep nesting must not exhaust the stack
  let deep = "";
  for (let i = 0; i < 100000; i++) deep += "[";
  let close = "";
  for (let i = 0; i < 100000; i++) close += "]";
  f += check(deep + close, true);
  f += check(deep + close.slice(1), false);
  return f;
}
