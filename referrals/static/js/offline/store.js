// What the phone keeps, in IndexedDB: the registers of the artist's next 7 days of sessions
// ("kept", replaced whole each time the app is opened online) and registers taken without a
// connection that are waiting to be sent ("queue"). Signing out clears both (the sign-out
// answer carries Clear-Site-Data); the end of the sign-in clears the kept registers.

export const NAME = 'aop-registers'
const KEPT = 'kept'
const QUEUE = 'queue'

// One connection per page (opening one costs more than the reads it serves), let go as soon as
// the database is to be deleted (signing out) or upgraded by a newer page.
let opened = null

function open () {
  opened = opened || new Promise((resolve, reject) => {
    const request = indexedDB.open(NAME, 1)
    request.onupgradeneeded = () => {
      request.result.createObjectStore(KEPT)
      request.result.createObjectStore(QUEUE, { keyPath: 'key' })
    }
    request.onsuccess = () => {
      const db = request.result
      db.onversionchange = () => { db.close(); opened = null }
      db.onclose = () => { opened = null }
      resolve(db)
    }
    request.onerror = () => { opened = null; reject(request.error) }
  })
  return opened
}

async function run (storeName, mode, work) {
  const db = await open()
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(storeName, mode)
    const request = work(transaction.objectStore(storeName))
    transaction.oncomplete = () => resolve(request ? request.result : undefined)
    transaction.onerror = () => reject(transaction.error)
    transaction.onabort = () => reject(transaction.error)
  })
}

export async function keptRegisters () {
  const kept = await run(KEPT, 'readonly', (store) => store.get('registers'))
  if (kept && Date.parse(kept.valid_until) < Date.now()) {
    await forgetKeptRegisters() // the sign-in they came with has ended
    return null
  }
  return kept || null
}

export function keepRegisters (bundle) {
  return run(KEPT, 'readwrite', (store) => store.put(bundle, 'registers'))
}

export function forgetKeptRegisters () {
  return run(KEPT, 'readwrite', (store) => store.clear())
}

export async function waiting () {
  const items = await run(QUEUE, 'readonly', (store) => store.getAll())
  return (items || []).sort((a, b) => a.taken_at - b.taken_at)
}

export function putWaiting (item) {
  return run(QUEUE, 'readwrite', (store) => store.put(item))
}

export function removeWaiting (key) {
  return run(QUEUE, 'readwrite', (store) => store.delete(key))
}
