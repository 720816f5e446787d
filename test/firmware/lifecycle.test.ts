import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Lifecycle } from "../../firmware/lifecycle.js";

describe("lifecycle", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("boots, then shows the claim window, which closes back to unclaimed", () => {
    const lifecycle = new Lifecycle();
    const seen: string[] = [];
    lifecycle.on("change", (state) => seen.push(state));
    expect(lifecycle.state).toBe("booting");
    lifecycle.enter("unclaimed");
    lifecycle.openClaimWindow(60_000);
    expect(lifecycle.state).toBe("claimWindow");
    expect(lifecycle.isClaimWindowOpen()).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(lifecycle.state).toBe("unclaimed");
    expect(lifecycle.isClaimWindowOpen()).toBe(false);
    expect(seen).toEqual(["unclaimed", "claimWindow", "unclaimed"]);
  });

  it("says once when the claim window runs out, and not when it is closed on purpose", () => {
    const lifecycle = new Lifecycle();
    let closed = 0;
    lifecycle.on("claimWindowClosed", () => closed++);
    lifecycle.enter("unclaimed");
    lifecycle.openClaimWindow(60_000);
    vi.advanceTimersByTime(59_999);
    expect(closed).toBe(0);
    vi.advanceTimersByTime(1);
    lifecycle.showRefused();
    expect(closed).toBe(1);
    lifecycle.openClaimWindow(60_000);
    lifecycle.closeClaimWindow();
    vi.advanceTimersByTime(60_000);
    expect(closed).toBe(1);
  });

  it("an open shows over someone else's refusal or lockout, which returns once the door locks", () => {
    const lifecycle = new Lifecycle();
    lifecycle.enter("activated");
    lifecycle.showLockedOut();
    lifecycle.showRefused();
    lifecycle.setOpening(true);
    expect(lifecycle.state).toBe("opening");
    lifecycle.setOpening(false);
    expect(lifecycle.state).toBe("refused");
    vi.advanceTimersByTime(1_000);
    expect(lifecycle.state).toBe("lockedOut");
    vi.advanceTimersByTime(10_000);
    expect(lifecycle.state).toBe("ready");
  });

  it("reset armed outranks everything but an error", () => {
    const lifecycle = new Lifecycle();
    lifecycle.enter("activated");
    lifecycle.setOfficeMode(true);
    lifecycle.setResetArmed(true);
    expect(lifecycle.state).toBe("resetArmed");
    lifecycle.setResetArmed(false);
    expect(lifecycle.state).toBe("officeMode");
    lifecycle.enter("error");
    lifecycle.enter("activated");
    expect(lifecycle.state).toBe("error");
  });

  it("a contested broker session shows over broker unreachable, and ends", () => {
    const lifecycle = new Lifecycle();
    lifecycle.enter("activated");
    lifecycle.setBrokerConnected(false);
    lifecycle.setBrokerContested(true);
    expect(lifecycle.state).toBe("brokerContested");
    lifecycle.setBrokerConnected(true);
    expect(lifecycle.state).toBe("brokerContested");
    lifecycle.setBrokerContested(false);
    expect(lifecycle.state).toBe("ready");
  });

  it("a refusal shows briefly, then the state returns", () => {
    const lifecycle = new Lifecycle();
    lifecycle.enter("activated");
    lifecycle.setBrokerConnected(false);
    lifecycle.showRefused();
    expect(lifecycle.state).toBe("refused");
    vi.advanceTimersByTime(1_000);
    expect(lifecycle.state).toBe("offline");
  });

  it("an unsynchronised clock shows only once the broker is fine", () => {
    const lifecycle = new Lifecycle();
    lifecycle.enter("activated");
    lifecycle.setClockSynced(false);
    lifecycle.setBrokerConnected(false);
    expect(lifecycle.state).toBe("offline");
    lifecycle.setBrokerConnected(true);
    expect(lifecycle.state).toBe("clockUnsynced");
    lifecycle.setClockSynced(true);
    expect(lifecycle.state).toBe("ready");
  });
});
