"""Tabular general-sum Markov games from explicit tensors, and named instances."""

from envs.tabular.game import SCHEMA_VERSION, TabularGame, TabularState, load_game
from envs.tabular.games import (
    battle_of_the_sexes,
    chicken,
    grid_crossing,
    grid_rendezvous,
    matrix_game,
    prisoners_dilemma,
    random_game,
    random_game_env,
    random_team_game_env,
    stag_hunt,
    team_game,
)

__all__ = [
    "SCHEMA_VERSION",
    "TabularGame",
    "TabularState",
    "battle_of_the_sexes",
    "chicken",
    "grid_crossing",
    "grid_rendezvous",
    "load_game",
    "matrix_game",
    "prisoners_dilemma",
    "random_game",
    "random_game_env",
    "random_team_game_env",
    "stag_hunt",
    "team_game",
]
