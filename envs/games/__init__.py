"""Procedurally generated multi-turn puzzles, each with a solver.

Every game takes `difficulty` in {"easy", "medium", "hard"}; the `games` suite lists each
game at each difficulty. Each game's turn limit is its class's `default_max_turns`, so a
game built directly has the same limit as one made by id.
"""

from tirgym.registry import register

# (id name, module:class, description)
GAMES: list[tuple[str, str, str]] = [
    ("Sokoban", "sokoban:SokobanEnv", "Push every box onto a target."),
    ("FrozenLake", "frozen_lake:FrozenLakeEnv", "Cross the ice to the goal without falling in a hole."),
    ("Maze", "maze:MazeEnv", "Walk from the start to the exit of a maze."),
    ("Minesweeper", "minesweeper:MinesweeperEnv", "Reveal every safe cell without hitting a mine."),
    ("Game2048", "game2048:Game2048Env", "Slide tiles to reach the target tile."),
    ("Sudoku", "sudoku:SudokuEnv", "Fill the grid so rows, columns and boxes hold each digit once."),
    ("Wordle", "wordle:WordleEnv", "Guess the hidden five-letter word from letter-by-letter feedback."),
    ("Hanoi", "hanoi:HanoiEnv", "Move the tower of disks to the last peg."),
    ("Countdown", "countdown:CountdownEnv", "Combine numbers step by step to reach the target."),
    ("LightsOut", "lights_out:LightsOutEnv", "Switch every light off by pressing cells."),
]  # fmt: skip

for _name, _target, _desc in GAMES:
    register(f"tirgym/{_name}-v0", f"tirgym.envs.games.{_target}", tags=["game"], description=_desc)
