// ctx.js: what every component of the logged-in console shares: the
// session, the store, selection, and the ways to report errors and run
// operations.
import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';

export const Ctx = createContext(null);

export const useCtx = () => useContext(Ctx);

// Re-render when the store changes (an event batch arrived).
export function useStoreVersion(store) {
  const [v, setV] = useState(store.version);
  useEffect(() => store.subscribe(setV), [store]);
  return v;
}
