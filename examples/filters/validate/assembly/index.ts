// validate: a samsa filter that rejects records whose value is not valid
// JSON. See README.md.
import { Batch, Decision, handle, keep, log, reject } from "@samsa/filter-as";
export { samsa_abi_version, samsa_alloc, samsa_init, samsa_filter } from "@samsa/filter-as";
import { validateBytes } from "./json";

/** The decision for one record: keep if its value is valid JSON, else reject saying which offset and why. */
function decide(offset: i64, value: Uint8Array | null): Decision {
  const err = validateBytes(value);
  if (err == null) return keep();
  return reject("offset " + offset.toString() + ": value is not valid JSON: " + err);
}

handle((b: Batch): Decision[] | null => {
  const ds = new Array<Decision>(b.records.length);
  let rejected = 0;
  for (let i = 0; i < b.records.length; i++) {
    const d = decide(b.records[i].offset, b.records[i].value);
    if (d.message.length > 0) rejected++;
    ds[i] = d;
  }
  log("validate: " + b.records.length.toString() + " records, " + rejected.toString() + " rejected");
  return ds;
});
