// Flat config: typescript-eslint's recommended type-aware rules over every TypeScript source.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-floating-promises": "error",
    },
  },
  {
    // The app side (provisioning/), the HAL and common/ ship without the hub: they never import firmware/.
    files: ["common/**/*.ts", "hal/**/*.ts", "provisioning/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["**/firmware/*"], message: "the app side, the HAL and common/ must not depend on the hub (firmware/)" }] }],
    },
  },
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
);
