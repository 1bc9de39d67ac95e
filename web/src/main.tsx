// Entry point: choose the language, register the service worker, load the core, render.
import { render } from 'preact';
import { App } from './app';
import { applyLang, pickLang, storedLang } from './i18n';
import { loadCore } from './loader';
import './styles.css';

const lang = pickLang(navigator.languages, storedLang());
applyLang(lang);

if ('serviceWorker' in navigator) {
  // Caches the app shell only (see sw.js); a failure leaves the app working online.
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e: unknown) => {
    console.warn('service worker not registered:', e);
  });
}

const root = document.getElementById('app');
if (root) render(<App initialLang={lang} load={loadCore} />, root);
