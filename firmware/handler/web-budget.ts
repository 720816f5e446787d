/**
 * The web Code budget of each user (protocol v2, story 5). Web Codes come only from a paired web
 * relay, but the relay is the cloud, which the threat model does not trust: it could guess. So
 * every failed web Code of a user (not ours, wrong PIN) is counted in a rolling window, and a
 * success does not refill it: guessing cannot resume after each real opening, as it could when a
 * success reset the count in a row. With the budget spent, the user's web Codes are refused
 * unread until the oldest failure leaves the window; the phone (sealed commands) is not touched.
 *
 * Bound: a Code guess succeeds with p ≤ 16/2^25 = 4.77 × 10⁻⁷ (code.ts, GUESS_SUCCESS_BOUND), so
 * WEB_BUDGET.failures = 10 per 24 h gives ≤ 4.8 × 10⁻⁶ a day and ≤ 1.7 × 10⁻³ a year per user,
 * however often the user opens. When few are left, the Owner sees a `web_budget_low` event.
 */
import type { Store } from "../store.js";

export const WEB_BUDGET = {
  /** Failed web Codes per user in the window. */
  failures: 10,
  windowMs: 24 * 60 * 60_000,
  /** At this many left, a `web_budget_low` event tells the Owner. */
  warnAtRemaining: 3,
} as const;

export type BudgetStatus = { allowed: true; remaining: number } | { allowed: false; until: number };

export class WebBudget {
  constructor(
    private readonly store: () => Store,
    private readonly now: () => number,
  ) {}

  async check(userId: string): Promise<BudgetStatus> {
    const failures = await this.load(userId);
    if (failures.length < WEB_BUDGET.failures) return { allowed: true, remaining: WEB_BUDGET.failures - failures.length };
    return { allowed: false, until: failures[0]! + WEB_BUDGET.windowMs };
  }

  /** Counts a failed web Code; returns how many are left in the window. */
  async spend(userId: string): Promise<number> {
    const failures = [...(await this.load(userId)), this.now()];
    await this.store().put("webbudget", userId, failures);
    return WEB_BUDGET.failures - failures.length;
  }

  /** What an Owner's PIN reset or a removal clears with the user. */
  clearOp(userId: string): { type: "del"; in: "webbudget"; key: string } {
    return { type: "del", in: "webbudget", key: userId };
  }

  /** Failure times still inside the window, oldest first; a record it cannot read counts as spent. */
  private async load(userId: string): Promise<number[]> {
    const value = await this.store().get<unknown>("webbudget", userId);
    if (value === undefined) return [];
    if (!Array.isArray(value) || !value.every((t) => Number.isSafeInteger(t))) {
      return Array.from({ length: WEB_BUDGET.failures }, () => this.now());
    }
    const cutoff = this.now() - WEB_BUDGET.windowMs;
    return (value as number[]).filter((t) => t > cutoff).slice(-WEB_BUDGET.failures);
  }
}
