import { readFileSync } from "node:fs";
import { summarizeProfile } from "./profile.js";
for (const f of process.argv.slice(2)) { console.log(f); console.log(summarizeProfile(JSON.parse(readFileSync(f, "utf8")), 40)); }
