// Per-isolate session histories, bounded in bytes (issue 27).
//
// Why bytes and not a session count: a count bounds nothing when one session can hold 50 paths of 2 KB
// each; Cloudflare gives an isolate 128 MB, so the store gets a byte budget (SESSION_MAX_BYTES, default
// 8 MiB) and drops least recently used sessions until it fits. The size of an entry is an upper bound of
// what V8 keeps for it: two bytes per character (strings may be two-byte) plus the object headers.

const ENTRY_OVERHEAD = 128; // the Map entry, the array and its backing store
const STRING_OVERHEAD = 32; // a string's header, its slot in the array

export function historyBytes(id, pages) {
  let bytes = ENTRY_OVERHEAD + STRING_OVERHEAD + 2 * id.length;
  for (const page of pages) bytes += STRING_OVERHEAD + 2 * page.length;
  return bytes;
}

export class SessionStore {
  constructor(maxBytes, keep) {
    this.maxBytes = maxBytes;
    this.keep = keep;
    this.map = new Map(); // id -> {pages, bytes}, least recently used first
    this.bytes = 0;
    this.evicted = 0;
  }

  get(id) {
    const entry = this.map.get(id);
    if (!entry) return undefined;
    this.map.delete(id);
    this.map.set(id, entry);
    return entry.pages;
  }

  set(id, history) {
    this.drop(id);
    const pages = history.slice(-this.keep);
    const bytes = historyBytes(id, pages);
    if (bytes > this.maxBytes) return; // larger than the whole budget: not kept
    this.map.set(id, { pages, bytes });
    this.bytes += bytes;
    while (this.bytes > this.maxBytes) {
      this.drop(this.map.keys().next().value);
      this.evicted += 1;
    }
  }

  drop(id) {
    const entry = this.map.get(id);
    if (!entry) return;
    this.map.delete(id);
    this.bytes -= entry.bytes;
  }

  describe() {
    return { count: this.map.size, bytes: this.bytes, maxBytes: this.maxBytes, evicted: this.evicted };
  }
}
