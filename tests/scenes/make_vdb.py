"""Write a small OpenVDB fog volume (a sphere of density 1), for the vdb real scene.

    /usr/bin/python3 make_vdb.py OUT.vdb

Runs with Debian's python3 and its python3-openvdb (pyopenvdb), which `.ci/run`
installs: PyPI's bpy has no OpenVDB writer, and its mantaflow cannot bake here.
"""

import sys

import pyopenvdb as vdb

grid = vdb.FloatGrid()
grid.name = "density"
grid.gridClass = vdb.GridClass.FOG_VOLUME
access = grid.getAccessor()
for i in range(-8, 8):
    for j in range(-8, 8):
        for k in range(-8, 8):
            if i * i + j * j + k * k < 49:
                access.setValueOn((i, j, k), 1.0)
grid.transform = vdb.createLinearTransform(voxelSize=0.1)
vdb.write(sys.argv[1], grids=[grid])
