-- Plain GET of the URL (the study's HTML hello at /uwsgi/).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
