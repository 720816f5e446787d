/**
 * Who may do what, for every path a request can take (sealed command, web Code, BLE). Everyone
 * opens; Office Mode (the Matter Door Lock's Passage mode) needs a Super User or above; users
 * are managed by the Owner and Admins; PIN resets, backups and restores are the Owner's. The web
 * relay (a paired service, not a person) only passes on people's Codes; the person's own role
 * decides what their Code may do.
 */
import type { CommandOp, Role } from "../../provisioning/protocol/messages.js";
import { IqError } from "../errors.js";
import type { User } from "../users.js";

const EVERYONE: readonly Role[] = ["owner", "admin", "superuser", "user"];
const RELAY: readonly Role[] = ["relay"];

export const ALLOWED: Readonly<Record<CommandOp, readonly Role[]>> = {
  whoami: [...EVERYONE, ...RELAY],
  open: EVERYONE,
  office: ["owner", "admin", "superuser"],
  "user.add": ["owner", "admin"],
  "user.remove": ["owner", "admin"],
  "user.list": ["owner", "admin"],
  "pin.change": EVERYONE,
  "pin.reset": ["owner"],
  "device.invite": EVERYONE,
  backup: ["owner"],
  restore: ["owner"],
  "web.open": RELAY,
  "web.office": RELAY,
};

/** Roles an Admin may add and remove; the Owner manages every role but the owner. */
const ADMIN_MANAGES: readonly Role[] = ["superuser", "user"];

/** What each op does, in words: the person reading a refusal knows commands, not ops (`user.add`). */
const OP_WORDS: Readonly<Record<CommandOp, string>> = {
  whoami: "asking who you are",
  open: "opening",
  office: "Office Mode",
  "user.add": "adding users",
  "user.remove": "removing users",
  "user.list": "listing users",
  "pin.change": "changing a PIN",
  "pin.reset": "resetting a PIN",
  "device.invite": "inviting a second device",
  backup: "a backup",
  restore: "a restore",
  "web.open": "opening with a web Code",
  "web.office": "Office Mode with a web Code",
};

const ROLE_NAMES: Readonly<Record<Role, string>> = {
  owner: "the Owner",
  admin: "an Admin",
  superuser: "a Super User",
  user: "a User",
  relay: "the web relay",
};

export function requireAllowed(user: User, op: CommandOp): void {
  if (ALLOWED[op].includes(user.role)) return;
  const who = ALLOWED[op].map((role) => ROLE_NAMES[role]).join(", ").replace(/, ([^,]*)$/, " or $1");
  throw new IqError("forbidden", `${OP_WORDS[op]} needs ${who}; you are ${ROLE_NAMES[user.role]}`);
}

export function requireManages(manager: User, role: Role): void {
  const may = manager.role === "owner" ? role !== "owner" : ADMIN_MANAGES.includes(role);
  if (!may) throw new IqError("forbidden", `${ROLE_NAMES[manager.role]} cannot add or remove ${ROLE_NAMES[role]}`);
}
