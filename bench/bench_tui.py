"""The workbench's responsiveness in a real terminal (tmux): cold start to first frame, and
key-to-render latency with the machine idle and while a training run trains and is followed live:
for the heaviest key (switching between the Dashboard and the Train screen, which redraws the
whole terminal) and the most frequent one (a character typed into the chat prompt).

Each figure is measured from outside, as a user sees it: a cold start polls `capture-pane`
every 10 ms until the first frame shows; a key's latency runs from tmux sending it until the
application's output carrying the result reaches tmux's control-mode client (no polling). A
minimal Textual app with two near-empty screens gives the floor for this machine.

    PYTHONPATH=. python bench/bench_tui.py [--starts 5] [--keys 40] [--base MODEL]

Without --base a tiny random Llama is built (1 s) and trained; its steps are short, so it
keeps both the CPU and the run's events file busy. Goal: every p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.runs.rundir import RunDir  # noqa: E402
TANREN = Path(sys.executable).with_name("tanren")
SAMPLE = REPO / "engine" / "data" / "samples" / "ja_en_chat.jsonl"


class Terminal:
    """`tanren` in an 80x24 tmux pane on a tmux server of its own.

    Keys go in, and the screen's output comes back, through a tmux control-mode client: its
    `%output` notifications arrive as the application writes, so a key's latency is measured
    without polling (which would compete with the application for the CPU).
    """

    opened = 0

    def __init__(self, home: Path, command: tuple[str, ...] = (str(TANREN),)):
        Terminal.opened += 1
        self.socket = f"tanren-bench-{os.getpid()}-{Terminal.opened}"
        self.env = {**os.environ, "TANREN_HOME": str(home), "PYTHONPATH": str(REPO)}
        self.command = command
        self.control: subprocess.Popen | None = None
        self.output = queue.Queue()

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=self.env).stdout

    def start(self) -> float:
        """Seconds from starting the process to the first frame on screen (polled every 10 ms)."""
        start = time.perf_counter()
        self.tmux("new-session", "-d", "-s", "bench", "-x", "80", "-y", "24", "-e", f"TANREN_HOME={self.env['TANREN_HOME']}",
                  "-e", f"PYTHONPATH={REPO}", "-e", "TERM=xterm-256color", *self.command)
        self.wait_for("1 Dashboard")
        elapsed = time.perf_counter() - start
        self.control = subprocess.Popen(["tmux", "-L", self.socket, "-C", "attach", "-t", "bench"], env=self.env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        threading.Thread(target=self._read, daemon=True).start()
        return elapsed

    def _read(self) -> None:
        for line in self.control.stdout:
            if line.startswith(b"%output "):
                data = line.split(b" ", 2)[2].rstrip(b"\n")
                self.output.put((time.perf_counter(), _unescape(data)))

    def cpu_s(self) -> float:
        """CPU seconds the application's process (all its threads) has used so far."""
        pid = self.tmux("list-panes", "-t", "bench", "-F", "#{pane_pid}").strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench")

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.perf_counter() + timeout
        while text not in self.screen():
            if time.perf_counter() > deadline:
                raise SystemExit(f"{text!r} did not appear; the screen:\n{self.screen()}")
            time.sleep(0.01)

    def key_latency(self, key: str, shows: str) -> float:
        """Seconds from sending `key` until output containing `shows` reaches the terminal."""
        time.sleep(0.3)  # let the previous screen settle
        while not self.output.empty():
            self.output.get_nowait()
        seen = b""
        start = time.perf_counter()
        self.control.stdin.write(f"send-keys -t bench {key}\n".encode())
        while True:
            arrived, data = self.output.get(timeout=60)
            seen += data
            if shows.encode() in seen:
                return arrived - start

    def stop(self) -> None:
        if self.control is not None:
            self.control.stdin.close()
        self.tmux("kill-server")


def _unescape(data: bytes) -> bytes:
    """tmux control mode writes bytes below 32 and the backslash as three octal digits."""
    out, index = bytearray(), 0
    while index < len(data):
        if data[index] == 0x5C and index + 3 < len(data) + 1 and data[index + 1:index + 4].isdigit():
            out.append(int(data[index + 1:index + 4], 8))
            index += 4
        else:
            out.append(data[index])
            index += 1
    return bytes(out)


def minimal_app() -> None:
    """The floor: a Textual app with two near-empty screens showing the same marker texts."""
    from textual.app import App
    from textual.screen import Screen
    from textual.widgets import Footer, Static

    class Home(Screen):
        def compose(self):
            yield Static("1 Dashboard\nBase models")
            yield Footer()

    class Other(Screen):
        def compose(self):
            yield Static("No run yet")
            yield Footer()

    class Minimal(App):
        MODES = {"home": Home, "other": Other}
        BINDINGS = [("1", "switch_mode('home')", "Home"), ("3", "switch_mode('other')", "Other"), ("q", "quit", "Quit")]

        def on_mount(self) -> None:
            self.switch_mode("home")

    Minimal().run()


MINIMAL = (sys.executable, str(Path(__file__).resolve()), "--minimal-app")


def cold_starts(home: Path, count: int, command: tuple[str, ...] = (str(TANREN),)) -> list[float]:
    times = []
    for _ in range(count):
        terminal = Terminal(home, command)
        times.append(terminal.start())
        terminal.stop()
    return times


def switch_latencies(terminal: Terminal, count: int, train_marker: str) -> tuple[list[float], float]:
    """Alternate between the Dashboard and the Train screen: each key's time to its new screen,
    and the application's CPU seconds per key beyond what it uses without keys (following a run)."""
    times = []
    settle = 0.3  # key_latency waits this long before each key
    background_start, wall_start = terminal.cpu_s(), time.perf_counter()
    time.sleep(settle * count / 2)
    background_rate = (terminal.cpu_s() - background_start) / (time.perf_counter() - wall_start)
    cpu_start, wall_start = terminal.cpu_s(), time.perf_counter()
    for index in range(count):
        if index % 2 == 0:
            times.append(terminal.key_latency("3", train_marker))
        else:
            times.append(terminal.key_latency("1", "Base models"))
    cpu = terminal.cpu_s() - cpu_start - background_rate * (time.perf_counter() - wall_start)
    return times, max(0.0, cpu) / count


def typing_latencies(terminal: Terminal, count: int) -> list[float]:
    """On the Chat screen, whose prompt has the focus: each typed character's time to its echo."""
    terminal.tmux("send-keys", "-t", "bench", "4")
    terminal.wait_for("Enter sends")
    times = [terminal.key_latency("z", "z" * typed) for typed in range(1, count + 1)]
    terminal.tmux("send-keys", "-t", "bench", "C-u", "F1")  # empty the prompt, back to the Dashboard
    terminal.wait_for("Base models")
    return times


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import tui.app; print(time.perf_counter() - t)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    return float(result.stdout)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def report(label: str, values: list[float], cpu_per_key: float | None = None) -> None:
    ms = [v * 1000 for v in values]
    cpu = f"   CPU {cpu_per_key * 1000:5.1f} ms/key" if cpu_per_key is not None else ""
    print(f"{label:<48} median {statistics.median(ms):6.1f} ms   p95 {p95(ms):6.1f} ms   max {max(ms):6.1f} ms"
          f"   (n={len(ms)}){cpu}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=5, help="cold starts to time")
    parser.add_argument("--keys", type=int, default=40, help="key presses to time, idle and while training")
    parser.add_argument("--base", help="base model to train (default: a tiny random Llama)")
    parser.add_argument("--minimal-app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.minimal_app:
        return minimal_app()
    if shutil.which("tmux") is None:
        raise SystemExit("this benchmark needs tmux")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        base = args.base
        if base is None:
            from tests.tiny_model import build_tiny_model

            base = str(build_tiny_model(Path(tmp) / "tiny-llama"))
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; terminal 80x24 in tmux")
        report("import tui.app (fresh process)", [import_time() for _ in range(args.starts)])
        report("cold start to first frame", cold_starts(home, args.starts))
        report("  floor: minimal Textual app, cold start", cold_starts(home, args.starts, MINIMAL))

        floor = Terminal(home, MINIMAL)
        floor.start()
        minimal, minimal_cpu = switch_latencies(floor, args.keys, "No run yet")
        floor.stop()
        terminal = Terminal(home)
        terminal.start()
        idle, idle_cpu = switch_latencies(terminal, args.keys, "No run yet")
        idle_typing = typing_latencies(terminal, args.keys)
        terminal.stop()

        subprocess.run([str(TANREN), "train", "--base", base, "--data", str(SAMPLE), "--name", "bench",
                        "--max-steps", "100000", "--set", "data.max_length=128", "--set", "training.save_steps=100000",
                        "--set", "training.micro_batch_size=2", "--set", "training.gradient_accumulation=1"],
                       env={**os.environ, "TANREN_HOME": str(home), "PYTHONPATH": str(REPO)}, check=True,
                       capture_output=True)
        terminal = Terminal(home)
        try:
            terminal.start()
            terminal.tmux("send-keys", "-t", "bench", "3")
            terminal.wait_for("/100,000 steps", timeout=600)  # the run trains and the view follows it
            terminal.tmux("send-keys", "-t", "bench", "1")
            terminal.wait_for("Base models")
            following_start, wall = terminal.cpu_s(), time.perf_counter()
            time.sleep(5)
            following = (terminal.cpu_s() - following_start) / (time.perf_counter() - wall)
            training, training_cpu = switch_latencies(terminal, args.keys, "/100,000 steps")
            training_typing = typing_latencies(terminal, args.keys)
        finally:
            terminal.stop()
            subprocess.run([str(TANREN), "stop", "bench"], env={**os.environ, "TANREN_HOME": str(home)},
                           capture_output=True)
        report("  floor: minimal Textual app, key to new screen", minimal, minimal_cpu)
        report("key to new screen, idle", idle, idle_cpu)
        report("key to new screen, while a run trains", training, training_cpu)
        report("typed character to its echo, idle", idle_typing)
        report("typed character to its echo, while a run trains", training_typing)
        print(f"CPU used by the workbench while it follows the training run (on the Dashboard): "
              f"{following:.1%} of one core")
        print(f"p95 while training / idle: {p95(training) / p95(idle):.2f}x; load average now "
              f"{os.getloadavg()[0]:.1f}")
        run = RunDir(home / "runs" / "bench")
        for _ in range(600):  # let the stopped run end before its folder is deleted
            if not run.is_alive():
                break
            time.sleep(0.1)


if __name__ == "__main__":
    main()
