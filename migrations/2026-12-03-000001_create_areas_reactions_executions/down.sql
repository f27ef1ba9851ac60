DROP TABLE executions;
DROP TABLE reactions;
DROP TABLE areas;
