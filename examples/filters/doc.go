// Package filters holds the example samsa Wasm filters, one per directory:
//
//   - redact (Go): masks e-mail addresses in JSON values;
//   - threshold (Go): keeps records whose JSON numeric field is within bounds;
//   - router (Go): routes JSON records to a topic named after a field;
//   - validate (AssemblyScript): rejects records whose value is not JSON.
//
// Each directory's README says how to build and test it. The tests of this
// package build every example into a module with the same commands, check
// the module's shape against wasm/ABI.md, and run it in the broker's filter
// host (package wasm).
package filters
