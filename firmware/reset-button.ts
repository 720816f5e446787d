/**
 * What the reset button does. An installer never reads code, so the gestures are few and the
 * LED confirms each one:
 *   short press                 → show status (and open the claim window when unclaimed)
 *   hold ≥ resetArmMs (10 s)    → LED starts the red-green-blue cycle: reset armed
 *   release while armed         → factory reset
 *   still held at resetCancelMs → cancelled (a stuck or leaned-on button never wipes the IQ)
 * Anything else (a press of 2–10 s) does nothing.
 */
import type { Button } from "../hal/button.js";

export interface ResetActions {
  showStatus(): void;
  armReset(): void;
  cancelReset(): void;
  factoryReset(): void;
}

export interface ResetThresholds {
  resetArmMs: number;
  resetCancelMs: number;
}

export function attachResetButton(button: Button, actions: ResetActions, thresholds: ResetThresholds): () => void {
  let armed = false;
  const onShortPress = () => actions.showStatus();
  const onHold = (thresholdMs: number) => {
    if (thresholdMs === thresholds.resetArmMs) {
      armed = true;
      actions.armReset();
    } else if (thresholdMs === thresholds.resetCancelMs && armed) {
      armed = false;
      actions.cancelReset();
    }
  };
  const onRelease = () => {
    if (!armed) return;
    armed = false;
    actions.factoryReset();
  };
  button.on("shortPress", onShortPress);
  button.on("hold", onHold);
  button.on("release", onRelease);
  return () => {
    button.off("shortPress", onShortPress);
    button.off("hold", onHold);
    button.off("release", onRelease);
  };
}
