import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The desktop app loads ui/dist through Tauri's custom protocol: no dev server, no remote
// content.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
  },
  // The unit tests (vitest, `npm test`) run the runes modules as the webview does: Svelte's
  // browser build, so `$state` and `$derived` are reactive as in the app.
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
});
