// Progressive enhancement only: every page works without JavaScript.
import { initAll } from '../nhsuk/nhsuk-frontend.min.js'

initAll()

// Artists' pages link the web app manifest: their registers can be taken without a connection.
if (document.querySelector('link[rel="manifest"]')) {
  import('./offline/app.js').then((offline) => offline.start())
}
