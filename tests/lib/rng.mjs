// A small deterministic random generator (xorshift32), so a failing randomized test can be
// replayed from its seed. rng(seed)() gives numbers in [0, 1).
export function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}
