from hyenadna.__main__ import run

run()
