"""Procedurally generated multi-turn puzzles, each with a solver (see issue 5).

Every game takes `difficulty` in {"easy", "medium", "hard"}; the `games` suite lists each
game at each difficulty. A line below is enabled once its module exists.
"""

from tirgym.registry import register

# (id name, module:class, default max turns, description)
GAMES: list[tuple[str, str, int, str]] = [
    # -- grid games (worker A) --
    ("Sokoban", "sokoban:SokobanEnv", 40, "Push every box onto a target."),
    (
        "FrozenLake",
        "frozen_lake:FrozenLakeEnv",
        30,
        "Cross the ice to the goal without falling in a hole.",
    ),
    ("Maze", "maze:MazeEnv", 40, "Walk from the start to the exit of a maze."),
    (
        "Minesweeper",
        "minesweeper:MinesweeperEnv",
        60,
        "Reveal every safe cell without hitting a mine.",
    ),
    ("Game2048", "game2048:Game2048Env", 300, "Slide tiles to reach the target tile."),
    # -- puzzles (worker B) --
    (
        "Sudoku",
        "sudoku:SudokuEnv",
        40,
        "Fill the grid so rows, columns and boxes hold each digit once.",
    ),
    (
        "Wordle",
        "wordle:WordleEnv",
        10,
        "Guess the hidden five-letter word from letter-by-letter feedback.",
    ),
    ("Hanoi", "hanoi:HanoiEnv", 80, "Move the tower of disks to the last peg."),
    ("Countdown", "countdown:CountdownEnv", 8, "Combine numbers step by step to reach the target."),
    ("LightsOut", "lights_out:LightsOutEnv", 30, "Switch every light off by pressing cells."),
]

for _name, _target, _turns, _desc in GAMES:
    register(
        f"tirgym/{_name}-v0",
        f"tirgym.envs.games.{_target}",
        tags=["game"],
        max_turns=_turns,
        description=_desc,
    )
