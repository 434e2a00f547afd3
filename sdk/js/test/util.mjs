// Small helpers shared by the tests.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until cond() (sync or async) is truthy, polling every `every` ms. */
export async function until(cond, ms = 5000, what = "condition", every = 2) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

/** Reads n records from a subscription, failing after ms. */
export async function take(sub, n, ms = 10_000) {
  const it = sub[Symbol.asyncIterator]();
  const out = [];
  const t = Date.now() + ms;
  while (out.length < n) {
    const r = await Promise.race([it.next(), sleep(Math.max(1, t - Date.now())).then(() => "timeout")]);
    if (r === "timeout") throw new Error(`got ${out.length} of ${n} records`);
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}
