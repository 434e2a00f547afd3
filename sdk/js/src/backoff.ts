/**
 * Full-jitter exponential backoff: a uniform delay in
 * [0, min(maxMs, initialMs * 2^attempt)). attempt counts from 0.
 */
export function backoffDelay(attempt: number, initialMs = 100, maxMs = 10_000, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, initialMs * Math.pow(2, Math.min(attempt, 30)));
  return Math.floor(random() * cap);
}
