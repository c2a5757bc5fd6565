// Failure-proof access to localStorage and cookies (blocked storage,
// sandboxed frames and private modes throw; we carry on without).

/** Domains a cookie for host may have been set on: a.b.example.com → a.b.example.com, b.example.com, example.com, com. */
export function domains(host) {
  const parts = String(host).split('.');
  return parts.map((_, i) => parts.slice(i).join('.'));
}

/** win: the window, or a fake with localStorage, document.cookie and location. Nothing here throws. */
export function createStorage(win) {
  const doc = win.document;
  const ls = (method, k, v) => {
    try {
      return win.localStorage[method](k, v);
    } catch (e) {
      return false;
    }
  };
  return {
    /** The stored string, or null (none, or no localStorage). */
    get: (k) => ls('getItem', k) || null,
    /** false when it could not be stored. */
    set: (k, v) => ls('setItem', k, v),
    del: (k) => ls('removeItem', k),
    cookie(name) {
      try {
        const m = doc.cookie.match('(?:^|; *)' + name + '=([^;]*)');
        return m && decodeURIComponent(m[1]);
      } catch (e) {
        return null;
      }
    },
    /** Expires the cookie whatever domain it was set on (the edge sets it, on the site's registrable domain). */
    dropCookie(name) {
      for (const d of ['', ...domains(win.location.hostname)]) {
        try {
          doc.cookie = name + '=;path=/;max-age=0' + (d && ';domain=' + d);
        } catch (e) { /* cookies disabled */ }
      }
    },
  };
}
