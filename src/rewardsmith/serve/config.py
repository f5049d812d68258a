"""The server's settings: one frozen config, built by the CLI, validated once (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass

from rewardsmith.errors import RewardsmithError


@dataclass(frozen=True)
class ServeConfig:
    """Everything `rewardsmith serve` can set; validated once by `check()`.

    max_items:        items per request (/score items, /best-of-n responses, /get_reward queries).
    max_chars:        characters per item (conversation + response); longer inputs are refused.
                      Within that, tokens beyond the manifest's max_length are truncated by the
                      manifest's policy (prompt cut on truncation_side, response kept).
    max_body_bytes:   request body size.
    max_pending:      items in flight (queued or being scored) at most; a request that would go past
                      it gets 503 with Retry-After at once. Bounds the server's memory under a
                      flood: 4 full requests of max_items; more than the worker can score within
                      request_timeout would time out anyway.
    request_timeout:  seconds a request may wait for its scores before a 503.
    max_wait_ms:      how long an idle worker waits for concurrent requests before scoring.
    token_budget, precision, compile: passed to the Scorer (compile: torch.compile the forward
                      pass, compiled once at startup before the port opens).
    policy_eos:       texts removed from the end of /get_reward queries besides the model's own
                      pad and eos: OpenRLHF decodes rollouts with the policy's special tokens, so a
                      policy whose eos is not the reward model's (any policy in front of an encoder)
                      leaves it on every response.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_items: int = 256
    max_chars: int = 64_000
    max_body_bytes: int = 16 * 1024 * 1024
    max_pending: int = 1024
    request_timeout: float = 120.0
    max_wait_ms: float = 5.0
    token_budget: int | None = None  # None: the Scorer's per-device default (2048 on CPU)
    precision: str = "auto"
    compile: bool = False
    policy_eos: tuple[str, ...] = ()

    def check(self) -> "ServeConfig":
        """Returns self; raises RewardsmithError listing every bad setting at once."""
        problems = []
        for name, flag in [("max_items", "--max-items"), ("max_chars", "--max-chars"),
                           ("max_body_bytes", "--max-body-bytes"), ("max_pending", "--max-pending"),
                           ("token_budget", "--token-budget")]:
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{flag} {getattr(self, name)} must be at least 1")
        if 1 <= self.max_pending < self.max_items:
            problems.append(f"--max-pending {self.max_pending} is below --max-items {self.max_items}: a full request "
                            "would wait behind any other; raise --max-pending or lower --max-items")
        if not self.request_timeout > 0:
            problems.append(f"--request-timeout {self.request_timeout} must be more than 0 seconds")
        if self.max_wait_ms < 0:
            problems.append(f"--max-wait-ms {self.max_wait_ms} must be 0 or more")
        if not 0 <= self.port <= 65535:
            problems.append(f"--port {self.port} must be between 0 and 65535")
        if self.api_key is not None and not self.api_key.strip():
            problems.append("--api-key is empty; give a secret or leave the option out")
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append(f"--precision {self.precision!r} must be auto, bf16 or fp32")
        if any(not text for text in self.policy_eos):
            problems.append("--policy-eos is empty; give the policy's eos text (e.g. '</s>')")
        if problems:
            raise RewardsmithError("invalid server settings: " + "; ".join(problems))
        return self
