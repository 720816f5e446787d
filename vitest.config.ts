import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Broker and LevelDB tests start real processes and open real files: give them room on a 2-core CI box.
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Says once which broker the MQTT tests use (and fails in CI without mosquitto).
    globalSetup: ["test/global-setup.ts"],
  },
});
