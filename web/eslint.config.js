// ESLint flat config: typescript-eslint's type-aware recommended rules for the app and its
// tests; plain recommended rules for the JavaScript that runs outside the bundle (the service
// worker, the end-to-end runner).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'public/pkg/'] },
  js.configs.recommended,
  {
    files: ['**/*.{ts,tsx}'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['src/sw.js'],
    // The build replaces these two placeholders (vite.config.ts).
    languageOptions: { globals: { ...globals.serviceworker, __SIRR_CACHE__: 'readonly', __SIRR_SHELL__: 'readonly' } },
  },
  {
    files: ['e2e/**/*.mjs', 'tools/**/*.mjs', 'eslint.config.js'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
);
