// Checks chat stream chunks against the AI SDK's own UI message chunk schema (the `ai` package in
// tests/node_modules). Input: one JSON chunk per line on stdin. Output: one JSON line per chunk,
// {"type", "ok", "error"?}.
import { safeValidateTypes } from "@ai-sdk/provider-utils";
import { uiMessageChunkSchema } from "ai";
import { createInterface } from "node:readline";

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const chunk = JSON.parse(line);
  const result = await safeValidateTypes({ value: chunk, schema: uiMessageChunkSchema });
  const out = { type: chunk.type, ok: result.success };
  if (!result.success) out.error = String(result.error?.message ?? result.error).slice(0, 2000);
  process.stdout.write(JSON.stringify(out) + "\n");
}
