// tasks.js: long operations run as Async calls; their task records
// arrive through event.from (store.js), so progress bars and results
// need no polling. The page remembers which object each of its tasks
// is about, for the per-object Tasks tab.

export const taskSubject = new Map(); // task ref -> object ref

// The value of a finished task's result (xapi keeps it XML-RPC encoded:
// "<value>OpaqueRef:...</value>").
export function taskResult(task) {
  const m = /<value>(?:<string>)?([^<]*)(?:<\/string>)?<\/value>/.exec(task.result || '');
  return m ? m[1] : task.result || '';
}

// Start an Async call about subject; resolve with its result when the
// task succeeds, reject with a XenAPIError-like error when it fails.
export async function runAsync(session, store, subject, method, ...args) {
  const task = await session.async(method, ...args);
  taskSubject.set(task, subject);
  return waitTask(store, task);
}

export function waitTask(store, task) {
  return new Promise((resolve, reject) => {
    let unsubscribe = () => {};
    const check = () => {
      const t = store.all('task')[task];
      if (!t || t.status === 'pending' || t.status === 'cancelling') return false;
      unsubscribe();
      if (t.status === 'success') resolve(taskResult(t));
      else {
        const info = t.error_info || [];
        const e = new Error(info.join(' '));
        e.code = info[0] || (t.status === 'cancelled' ? 'TASK_CANCELLED' : 'INTERNAL_ERROR');
        e.params = info.slice(1);
        reject(e);
      }
      return true;
    };
    unsubscribe = store.subscribe(check);
    check();
  });
}
