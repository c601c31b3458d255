DROP TABLE demo_farm;
